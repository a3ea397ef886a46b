"""Safety limits: output folders, bounded input parsing, config checked up front, private files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver.db import connect
from newsletter.publish.writer import MARKER


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- output folders never delete what they did not write ---------------------------------


@pytest.mark.parametrize("where", [".", "issue", "issues", "..", "assets"])
def test_build_refuses_to_replace_the_project_or_an_issue(
    runner: CliRunner, project: Path, example: Path, where: str
) -> None:
    out = example if where == "issue" else project / where
    before = tree(project)
    result = runner.invoke(app, ["build", str(example), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "--out" in result.stderr
    assert tree(project) == before


def test_build_replaces_its_own_output(runner: CliRunner, project: Path, example: Path) -> None:
    out = project / "elsewhere" / "b"
    for _ in range(2):
        result = runner.invoke(app, ["build", str(example), "--out", str(out)])
        assert result.exit_code == 0, result.stderr
    assert (out / MARKER).is_file() and (out / "index.html").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]  # nothing left beside it


def test_archive_refuses_a_folder_with_other_files(runner: CliRunner, project: Path) -> None:
    site = project / "mine"
    site.mkdir()
    (site / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["archive", "--out", str(site)])
    assert result.exit_code == 2
    assert "did not write" in result.stderr and result.stderr.count("\n") == 1
    assert tree(site) == {"notes.txt": b"keep me"}
    empty = project / "empty"
    empty.mkdir()
    for _ in range(2):  # an empty folder, then its own output: replaced
        assert runner.invoke(app, ["archive", "--out", str(empty)]).exit_code == 0
    assert (empty / "index.html").is_file()


def test_web_site_setting_pointing_at_the_project_is_refused(
    runner: CliRunner, project: Path
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[web]\nsite = "."\n')
    before = tree(project)
    result = runner.invoke(app, ["archive"])
    assert result.exit_code == 2 and "must never be replaced" in result.stderr
    assert tree(project) == before


# --- private files ---------------------------------------------------------------------------


def test_database_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "newsletter.db"
    connect(path).execute("CREATE TABLE t (x)")
    for file in [path, *tmp_path.glob("data/newsletter.db-*")]:
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file
