"""`newsletter archive` makes the new site in the one it replaced last time, kept beside the live
site: no folder is made or deleted on an incremental run, and the live site never changes
until the swap, even though the kept site shares its unchanged files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_SLUG
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.issues import find_issues
from newsletter.config import load_config
from newsletter.publish import generation
from newsletter.publish.archive import write_archive
from newsletter.publish.generation import NextSite, previous_folder
from newsletter.publish.incremental import build_incrementally

SECOND = (
    'subject: "Second"\npreheader: "P"\ndate: 2026-12-01\nstatus: ready\npublish: true\n'
    'lead:\n  title: "Two"\n'
)


def run(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["archive", "--json", *args])
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def snapshot(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def built_afresh(runner: CliRunner, tmp_path: Path) -> dict[str, bytes]:
    """The site as a full build into a new folder makes it."""
    assert run(runner, "--out", str(tmp_path / "fresh"))["rebuilt"] >= 1
    return snapshot(tmp_path / "fresh")


def beside(site: Path) -> list[str]:
    """What lies beside the site under its name: nothing but the record and the kept site."""
    return sorted(p.name for p in site.parent.iterdir() if p.name.startswith(f".{site.name}"))


def edit(folder: Path) -> None:
    """Change an issue's lead title, and its hero image if it has one, to other pixels."""
    issue = folder / "issue.md"
    issue.write_text(issue.read_text().replace('"Two"', '"Deux"'), encoding="utf-8")
    hero = folder / "images" / "hero.png"
    if hero.is_file():
        with Image.open(hero) as image:
            changed = image.convert("RGB")
        changed.putpixel((0, 0), (1, 2, 3))
        changed.save(hero)


@pytest.fixture
def two(project: Path, example: Path, write_issue: Callable[..., Path]) -> Path:
    """A second published issue; the site built twice, so a site is kept beside the live one."""
    folder = write_issue(front=SECOND, slug="two")
    runner = CliRunner()
    assert run(runner)["rebuilt"] == 2
    assert run(runner)["rebuilt"] == 0
    assert beside(project / "site") == [".site.cache.json", ".site.previous"]
    return folder


def test_an_incremental_run_makes_and_deletes_no_folder(
    runner: CliRunner, project: Path, two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = project / "site"
    kept = previous_folder(site)
    folders = {str(p.relative_to(kept)): p.stat().st_ino for p in [kept, *kept.rglob("*")]}
    folders = {path: ino for path, ino in folders.items() if (kept / path).is_dir()}
    page = site / EXAMPLE_SLUG / "index.html"
    unchanged = page.stat().st_ino
    deleted: list[object] = []
    edit(two)
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", lambda *args, **kwargs: deleted.append(args))
        assert run(runner)["rebuilt"] == 1
    assert deleted == []  # the replaced site was kept, not deleted
    now = {str(p.relative_to(site)): p.stat().st_ino for p in [site, *site.rglob("*")]}
    assert {path: ino for path, ino in now.items() if (site / path).is_dir()} == folders
    assert page.stat().st_ino == unchanged  # the unchanged page was not written again
    assert "Deux" in (site / "two" / "index.html").read_text(encoding="utf-8")
    assert snapshot(site) == built_afresh(runner, tmp_path)


def test_a_run_that_fails_leaves_the_live_site_as_it_was(
    runner: CliRunner,
    project: Path,
    example: Path,
    two: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept site shares the live site's unchanged files: they are replaced, never written
    into, so a run stopped just before the swap changed nothing that can be seen."""
    site = project / "site"
    before = snapshot(site)
    edit(two)
    edit(example)  # its image, a hard link shared by both sites, is copied again

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(generation, "swap_into_place", full_disk)
        result = runner.invoke(app, ["archive"])
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and result.stderr.count("\n") == 1
    assert snapshot(site) == before
    assert beside(site) == [".site.cache.json", ".site.previous"]
    assert run(runner)["rebuilt"] == 2
    assert snapshot(site) == built_afresh(runner, tmp_path)
    assert snapshot(site) != before


def test_ctrl_c_while_writing_leaves_the_live_site_and_no_folder_behind(
    project: Path, example: Path, two: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = project / "site"
    before = snapshot(site)
    edit(example)
    config = load_config()
    archive = build_incrementally(config, find_issues(project), set(), site)

    def interrupted(self: NextSite, path: str, source: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(NextSite, "copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_archive(archive.archive, site, (), archive.unchanged)
    assert snapshot(site) == before
    assert beside(site) == [".site.cache.json", ".site.previous"]


def test_what_the_kept_site_holds_is_not_trusted(
    runner: CliRunner, project: Path, two: Path, tmp_path: Path
) -> None:
    """Stray files and folders go; a file that is no longer the live site's is replaced."""
    site = project / "site"
    kept = previous_folder(site)
    (kept / "stray.html").write_text("stray", encoding="utf-8")
    (kept / "gone" / "images").mkdir(parents=True)
    (kept / "gone" / "index.html").write_text("gone", encoding="utf-8")
    page = kept / EXAMPLE_SLUG / "index.html"
    page.unlink()  # replaced, not written into: it is the live site's file too
    page.write_text("tampered", encoding="utf-8")
    assert run(runner)["rebuilt"] == 0
    assert snapshot(site) == built_afresh(runner, tmp_path)


def test_a_folder_that_is_not_ours_in_the_kept_place_is_left_alone(
    runner: CliRunner, project: Path, example: Path
) -> None:
    site = project / "site"
    kept = previous_folder(site)
    kept.mkdir()
    (kept / "notes.txt").write_text("mine", encoding="utf-8")
    for _ in range(2):
        assert run(runner)["issues"] == 1
    assert snapshot(kept) == {"notes.txt": b"mine"}
    assert (site / EXAMPLE_SLUG / "index.html").is_file()
    assert beside(site) == [".site.cache.json", ".site.previous"]
