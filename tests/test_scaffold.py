"""`newsletter new` scaffolds an issue that builds straight away."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli.app import app


def test_new_creates_a_commented_issue_that_builds(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(
        app, ["new", "France welcomes its first Chechen refugee", "--date", "2026-12-01"]
    )
    assert result.exit_code == 0, result.stderr
    folder = project / "issues" / "2026-12-01-france-welcomes-its-first-chechen-refugee"
    text = (folder / "issue.md").read_text()
    assert text.startswith("---\n")
    for field in ("subject:", "preheader:", "date: 2026-12-01", "lead:", "teasers:", "# cta:",
                  "#   caption:", "#    summary:", "{{ unsubscribe_url }}"):  # fmt: skip
        assert field in text, field
    assert (folder / "images").is_dir()
    built = runner.invoke(app, ["build", str(folder)])
    assert built.exit_code == 0, built.stderr
    assert (
        "France welcomes its first Chechen refugee"
        in (project / "build" / folder.name / "index.html").read_text()
    )


def test_new_refuses_to_overwrite(runner: CliRunner, project: Path) -> None:
    args = ["new", "Same title", "--date", "2026-12-01"]
    assert runner.invoke(app, args).exit_code == 0
    issue = project / "issues" / "2026-12-01-same-title" / "issue.md"
    issue.write_text("edited")
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists already" in again.stderr
    assert issue.read_text() == "edited"


def test_new_quotes_titles_safely(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["new", 'The "best" news: 100%', "--date", "2026-12-02"])
    assert result.exit_code == 0, result.stderr
    folder = project / "issues" / "2026-12-02-the-best-news-100"
    assert runner.invoke(app, ["build", str(folder)]).exit_code == 0
