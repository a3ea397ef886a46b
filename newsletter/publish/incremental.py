"""Rebuild only the archive pages whose inputs changed since the last `newsletter archive`.

An issue's page depends on its folder (issue.md, images), the templates, the configuration and
this package's version. Each is fingerprinted by the names, sizes and modification times of
its files (the configuration file by its content); an issue whose fingerprint matches the one
recorded last time reuses its page from the current site instead of being loaded and built.

The record is a JSON file beside the site (`.<site name>.cache.json`): what the index and the
feed need about each issue, never a page. Deleting it, or the site, only means a full rebuild;
an unreadable or outdated record is ignored the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from newsletter import __version__
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import make_environment, template_dirs
from newsletter.config import CONFIG_NAME, Config
from newsletter.publish.archive import Archive, Entry, assemble, issue_page

#: Bumped when the record's layout changes: an older record is then ignored.
FORMAT = 1

Page = tuple[Entry, list[tuple[str, Path]]]


@dataclass(frozen=True)
class ArchiveRun:
    """The archive built, the slugs of the issues reused rather than built, and the record
    to save (by `save_record`) once the archive is written."""

    archive: Archive
    unchanged: frozenset[str]
    record: dict[str, dict[str, Any]]

    @property
    def rebuilt(self) -> int:
        """How many issues were built."""
        return len(self.archive.entries) - len(self.unchanged)


def cache_file(site: Path) -> Path:
    """Where the record for the site in `site` lives: beside it, hidden."""
    return site.with_name(f".{site.name}.cache.json")


def _files_fingerprint(folders: Iterable[Path]) -> str:
    """A digest of every file's name (within its folder), size and modification time."""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(f"{folder.resolve()}\n".encode())
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                name = path.relative_to(folder).as_posix()
                digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def shared_fingerprint(config: Config) -> str:
    """What every page depends on: the package version, the configuration, the templates."""
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    config_file = config.root / CONFIG_NAME
    if config_file.is_file():
        digest.update(config_file.read_bytes())
    if config.logo:
        logo = config.path(config.logo).resolve()
        if logo.is_file():
            stat = logo.stat()
            digest.update(f"{logo}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    digest.update(_files_fingerprint(template_dirs(config.root)).encode())
    return digest.hexdigest()


def _entry_record(page: Page, key: str) -> dict[str, Any]:
    entry, images = page
    fields = asdict(entry)
    del fields["page"]  # read back from the site
    fields["date"] = entry.date.isoformat()
    return {"key": key, "entry": fields, "images": [[path, str(src)] for path, src in images]}


def _reuse(record: dict[str, Any], key: str, site: Path) -> Page | None:
    """The page recorded for an issue if its key matches and the site still holds it."""
    if record.get("key") != key:
        return None
    fields = dict(record["entry"])
    try:
        fields["page"] = (site / fields["slug"] / "index.html").read_text(encoding="utf-8")
    except OSError:
        return None
    fields["date"] = dt.date.fromisoformat(fields["date"])
    images = [(path, Path(src)) for path, src in record["images"]]
    if not all(src.is_file() for _, src in images):
        return None
    return Entry(**fields), images


def _load_record(path: Path) -> dict[str, Any]:
    """The issues recorded last time, by folder; empty if the record is missing or unusable."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return {}
    issues = record.get("issues")
    return issues if isinstance(issues, dict) else {}


def build_incrementally(config: Config, folders: list[Path], site: Path) -> ArchiveRun:
    """The archive of the issues in `folders`, reusing unchanged pages from `site`.

    Call `save_record` once the archive is written, so that the next run can reuse it.
    """
    site = site.resolve()
    recorded = _load_record(cache_file(site))
    shared = shared_fingerprint(config)
    env = make_environment(config.root)
    pages: list[Page] = []
    keys: dict[str, dict[str, Any]] = {}
    unchanged: set[str] = set()
    for folder in folders:
        key = hashlib.sha256(f"{shared}\0{_files_fingerprint([folder])}".encode()).hexdigest()
        name = str(folder.resolve())
        try:
            page = _reuse(recorded[name], key, site) if name in recorded else None
        except (KeyError, TypeError, ValueError):  # a hand-edited record: rebuild the issue
            page = None
        if page is None:
            page = issue_page(load_issue(folder), config, env)
        else:
            unchanged.add(page[0].slug)
        pages.append(page)
        keys[name] = _entry_record(page, key)
    archive = assemble(config, env, pages)
    return ArchiveRun(archive, frozenset(unchanged), keys)


def save_record(site: Path, run: ArchiveRun) -> None:
    """Write the record of the archive just written into `site` (best effort: it is a cache)."""
    path = cache_file(site.resolve())
    text = json.dumps({"format": FORMAT, "issues": run.record}, ensure_ascii=False)
    try:
        staging = path.with_name(f"{path.name}.tmp")
        staging.write_text(text, encoding="utf-8")
        staging.replace(path)
    except OSError:
        pass
