"""Bad input: one located line, exit code 2, no traceback, and no half-written build folder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app

WriteIssue = Callable[..., Path]


def build_fails(runner: CliRunner, folder: Path, *args: str) -> str:
    result = runner.invoke(app, ["build", str(folder), *args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("Error: ")
    return result.stderr


def test_missing_field(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(front='subject: "S"\ndate: 2026-11-24\nlead:\n  title: "T"\n')
    err = build_fails(runner, folder)
    assert err.strip() == (
        f"Error: {folder / 'issue.md'}:2: preheader: required field is missing; add it"
    )


def test_misspelt_field_suggests_the_right_one(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(
        front="""\
        subject: "S"
        preheader: "P"
        date: 2026-11-24
        lead:
          title: "T"
          bylin: "By me"
        """
    )
    err = build_fails(runner, folder)
    assert f"{folder / 'issue.md'}:7: lead.bylin: unknown field; did you mean 'byline'?" in err


def test_bad_url_names_its_field_and_line(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(
        front="""\
        subject: "S"
        preheader: "P"
        date: 2026-11-24
        lead:
          title: "T"
        teasers:
          - label: L
            title: T
            summary: S
            url: "javascript:alert(1)"
        """
    )
    err = build_fails(runner, folder)
    assert ":11: teasers.0.url: 'javascript:alert(1)' is not an http(s) URL" in err


def test_yaml_syntax_error_gives_the_line(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(front='subject: "S"\npreheader: "P\ndate: 2026-11-24\nlead: [\n')
    err = build_fails(runner, folder)
    assert err.startswith(f"Error: {folder / 'issue.md'}:")
    assert "YAML syntax error" in err and "check quotes and indentation" in err
    assert len(err.strip().splitlines()) == 1


def test_unclosed_front_matter(runner: CliRunner, project: Path) -> None:
    folder = project / "issues" / "open"
    folder.mkdir(parents=True)
    (folder / "issue.md").write_text("---\nsubject: x\n")
    assert "front matter is not closed" in build_fails(runner, folder)


def test_missing_issue_file(runner: CliRunner, project: Path) -> None:
    err = build_fails(runner, project / "issues" / "nothing-here")
    assert "no issue.md here; create it with 'newsletter new TITLE'" in err


def test_missing_image_file_names_the_field(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(
        front="""\
        subject: "S"
        preheader: "P"
        date: 2026-11-24
        lead:
          title: "T"
          image:
            src: images/missing.png
            alt: "A"
        """
    )
    err = build_fails(runner, folder)
    assert "lead.image.src: image file 'images/missing.png' not found" in err


def test_missing_body_image_names_the_line(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(body='Intro.\n\n![A thing](images/gone.png "Caption")\n')
    err = build_fails(runner, folder)
    assert f"{folder / 'issue.md'}:10: image file 'images/gone.png' not found" in err


def test_image_outside_the_issue_folder_is_refused(
    runner: CliRunner, write_issue: WriteIssue
) -> None:
    folder = write_issue(body="![x](../../newsletter.toml)\n")
    assert "must be an https URL or a path inside the issue folder" in build_fails(runner, folder)


def test_unknown_template(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(
        front='subject: "S"\npreheader: "P"\ndate: 2026-11-24\nlead:\n  title: "T"\n'
        "template: fancy.mjml.j2\n"
    )
    err = build_fails(runner, folder)
    assert "template 'fancy.mjml.j2' not found" in err and "check the 'template' field" in err


def test_unknown_merge_tag_in_body(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(body="Line one.\n\nHi {{ subscriber.nickname }}!\n")
    err = build_fails(runner, folder)
    assert f"{folder / 'issue.md'}:10: unknown merge tag 'subscriber.nickname'" in err


def test_bad_config_field(runner: CliRunner, example: Path, project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace("hello@news.example.org", "not-an-address"))
    err = build_fails(runner, example)
    assert f"{config}: sender.address: 'not-an-address' is not a valid email address" in err


def test_config_missing_postal_address(runner: CliRunner, example: Path, project: Path) -> None:
    config = project / "newsletter.toml"
    lines = [ln for ln in config.read_text().splitlines() if not ln.startswith("postal_address")]
    config.write_text("\n".join(lines))
    assert "postal_address: required field is missing" in build_fails(runner, example)


def test_config_toml_syntax_error(runner: CliRunner, example: Path, project: Path) -> None:
    (project / "newsletter.toml").write_text('name = "x\n')
    assert "not valid TOML" in build_fails(runner, example)


def test_no_config_found(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "no newsletter.toml found" in build_fails(runner, tmp_path)


def test_failed_build_leaves_previous_build_intact(
    runner: CliRunner, example: Path, project: Path
) -> None:
    assert runner.invoke(app, ["build", str(example)]).exit_code == 0
    out = project / "build" / example.name
    before = (out / "index.html").read_text()
    (example / "images" / "ceos.png").unlink()
    build_fails(runner, example)
    assert (out / "index.html").read_text() == before
    caches = (".html-cache", ".image-cache")
    left = sorted(p.name for p in out.parent.iterdir() if p.name not in caches)
    assert left == [example.name]  # no staging left


def test_failed_first_build_writes_nothing(runner: CliRunner, example: Path, project: Path) -> None:
    """Nothing but the caches (what was learnt of the other images is kept for the next try)."""
    (example / "images" / "hero.png").unlink()
    build_fails(runner, example)
    build = project / "build"
    assert not build.exists() or [p.name for p in build.iterdir()] in ([], [".image-cache"])


def test_real_process_exit_code_and_no_traceback(write_issue: WriteIssue, project: Path) -> None:
    folder = write_issue(front='subject: "S"\n')
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", str(folder)],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Error: ") == 3  # preheader, date, lead: every problem at once


def test_debug_shows_the_traceback_behind_an_error(write_issue: WriteIssue, project: Path) -> None:
    folder = write_issue(front='subject: "S"\n')
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--debug", "build", str(folder)],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "IssueError" in result.stderr
