"""The build folder is replaced whole or not at all."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from newsletter.compose.build import build_issue, local_preview
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.errors import WriteError
from newsletter.publish.writer import MARKER, STALE_SECONDS, staging_folder, write_build


def test_failure_mid_write_keeps_the_old_build(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_issue(load_issue(example), load_config())
    out = tmp_path / "builds" / "out"
    write_build(built, out, local_preview(built))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    copied = []

    def failing_copy(src: Path, dst: Path) -> None:  # a full disk, simulated
        if copied:
            raise OSError(28, "No space left on device")
        copied.append(dst)
        shutil.copyfile(src, dst)

    monkeypatch.setattr(shutil, "copy2", failing_copy)
    with pytest.raises(WriteError, match="No space left on device"):
        write_build(built, out, "changed")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_preview_points_at_local_images_and_fills_tags(example: Path, tmp_path: Path) -> None:
    built = build_issue(load_issue(example), load_config())
    preview = local_preview(built)
    assert 'src="images/hero.png"' in preview
    assert "{{" not in preview
    assert "Hi friend," in preview


def test_leftovers_of_killed_runs_are_removed_once_stale(tmp_path: Path) -> None:
    """A run killed while making (or retiring) a folder leaves `.out.XXXX` behind; a later run
    removes it once it is hours old, if it is ours (marked, or empty), and nothing else."""
    out, old = tmp_path / "out", time.time() - STALE_SECONDS - 60

    def leftover(name: str, marked: bool, mtime: float, files: tuple[str, ...] = ()) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for file in (MARKER,) * marked + files:
            (folder / file).write_text("x")
        os.utime(folder, (mtime, mtime))
        return folder

    leftover(".out.killed1", True, old, ("index.html",))
    leftover(".out.killed2.old", True, old)
    leftover(".out.empty", False, old)
    fresh = leftover(".out.running", True, time.time())  # perhaps another run, now
    foreign = leftover(".out.notes", False, old, ("mine.txt",))
    kept = leftover(".out.previous", True, old)  # the archive's previous generation
    (tmp_path / ".out.cache.json").write_text("{}")
    staging = staging_folder(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, foreign.name, kept.name, ".out.cache.json", staging.name]
    )
    assert staging.stat().st_mode & 0o777 == 0o755 and not any(staging.iterdir())
