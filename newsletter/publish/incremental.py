"""Rebuild only the archive pages whose inputs changed since the last `newsletter archive`.

An issue's page depends on its folder (issue.md, images), the templates, the configuration,
this package's version, and which issues are published beside it (its links to the previous
and next issue). The first four are fingerprinted by the names, sizes and modification times
of their files (the configuration file by its content); an issue whose fingerprint matches the
one recorded last time is not built again: its entry (what the index and the feed say) comes
from the record, and its page from the current site if its neighbours are the same as when it
was made, else the page alone is made again. Which issues are published (sent, or ready with
`publish: true`) is decided anew on every run; the index and the feed are always rebuilt.

The record is a JSON file beside the site (`.<site name>.cache.json`): what the index and the
feed need about each issue, never a page. Deleting it, or the site, only means a full rebuild;
an unreadable or outdated record is ignored the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from newsletter import __version__
from newsletter.compose.issues import load_issue
from newsletter.compose.models import Issue
from newsletter.compose.templates import make_environment, template_dirs
from newsletter.config import CONFIG_NAME, Config
from newsletter.publish.archive import (
    Archive,
    Entry,
    PageMaker,
    Piece,
    assemble,
    build_piece,
    is_public,
    page_maker,
    site_logo,
)
from newsletter.publish.pages import Neighbour

#: Bumped when the record's layout changes: an older record is then ignored.
FORMAT = 4


@dataclass(frozen=True)
class ArchiveRun:
    """The archive built, the slugs of the issues whose pages were reused rather than made,
    and the record to save (by `save_record`) once the archive is written."""

    archive: Archive
    unchanged: frozenset[str]
    record: dict[str, dict[str, Any]]

    @property
    def rebuilt(self) -> int:
        """How many issues' pages were made (the others were reused as they were)."""
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


def _neighbours(older: Neighbour | None, newer: Neighbour | None) -> list[Any]:
    return [asdict(older) if older else None, asdict(newer) if newer else None]


def _entry_record(entry: Entry, images: tuple[tuple[str, Path], ...], key: str) -> dict[str, Any]:
    fields = asdict(entry)
    fields["date"] = entry.date.isoformat()
    return {"key": key, "entry": fields, "images": [[path, str(src)] for path, src in images]}


def _recorded_piece(
    record: dict[str, Any], key: str
) -> tuple[Entry, tuple[tuple[str, Path], ...]] | None:
    """The entry and images recorded for an issue, if its key matches and the images exist."""
    if record.get("key") != key:
        return None
    fields = dict(record["entry"])
    fields["date"] = dt.date.fromisoformat(fields["date"])
    images = tuple((path, Path(src)) for path, src in record["images"])
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


def _facts(issue: Issue) -> dict[str, Any]:
    """What decides whether an issue is published, besides the sent issues."""
    return {"status": issue.status, "publish": issue.publish, "slug": issue.slug}


def build_incrementally(
    config: Config, folders: list[Path], sent: Collection[str], site: Path
) -> ArchiveRun:
    """The archive of the publishable issues in `folders` (see `is_public`; `sent` are the
    slugs sent to subscribers), reusing what is unchanged in `site`. An unchanged issue is not
    even loaded unless its page must be made again.

    Call `save_record` once the archive is written, so that the next run can reuse it.
    """
    site = site.resolve()
    recorded = _load_record(cache_file(site))
    shared = shared_fingerprint(config)
    env, logo = make_environment(config.root), site_logo(config)
    pieces: list[Piece] = []
    records: dict[str, dict[str, Any]] = {}
    unchanged: set[str] = set()

    def page(make: PageMaker, name: str, slug: str, made_with: Any) -> PageMaker:
        """The page from the site if it was made with these neighbours, else made now."""

        def made(older: Neighbour | None, newer: Neighbour | None) -> str:
            neighbours = records[name]["neighbours"] = _neighbours(older, newer)
            if made_with == neighbours:
                try:
                    text = (site / slug / "index.html").read_text(encoding="utf-8")
                except OSError:
                    return make(older, newer)
                unchanged.add(slug)
                return text
            return make(older, newer)

        return made

    def remade(folder: Path, entry: Entry) -> PageMaker:
        """The page of an unchanged issue made again (its neighbours changed)."""
        return lambda older, newer: page_maker(load_issue(folder), config, env, logo, entry)(
            older, newer
        )

    for folder in folders:
        key = hashlib.sha256(f"{shared}\0{_files_fingerprint([folder])}".encode()).hexdigest()
        name = str(folder.resolve())
        old = recorded.get(name)
        old = old if isinstance(old, dict) and old.get("key") == key else {}
        issue = None if isinstance(old.get("facts"), dict) else load_issue(folder)
        facts = _facts(issue) if issue else old["facts"]
        records[name] = {"key": key, "facts": facts}
        try:
            if not is_public(facts["status"], facts["publish"], facts["slug"], sent):
                continue
            found = _recorded_piece(old, key) if old else None
        except (KeyError, TypeError, ValueError):  # a hand-edited record: build the issue
            found = None
        if found is None:
            piece = build_piece(issue or load_issue(folder), config, env, logo)
            made_with = None
        else:
            entry, images = found
            piece = Piece(entry, images, remade(folder, entry))
            made_with = old.get("neighbours")
        records[name] |= _entry_record(piece.entry, piece.images, key)
        pieces.append(
            Piece(piece.entry, piece.images, page(piece.page, name, piece.entry.slug, made_with))
        )
    archive = assemble(config, env, logo, pieces)
    return ArchiveRun(archive, frozenset(unchanged), records)


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
