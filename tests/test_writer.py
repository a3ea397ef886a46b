"""The build folder is replaced whole or not at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from newsletter.compose.build import build_issue, local_preview
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.errors import WriteError
from newsletter.publish.writer import write_build


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
