"""An editor's own templates/ folder overrides the package's defaults, file by file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.templates import default_templates


def test_project_template_overrides_default(
    runner: CliRunner, example: Path, project: Path
) -> None:
    own = project / "templates"
    own.mkdir()
    teaser = (default_templates() / "teaser.mjml.j2").read_text()
    (own / "teaser.mjml.j2").write_text(teaser.replace("Keep reading", "Read on"))
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 0, result.stderr
    html = (project / "build" / example.name / "index.html").read_text()
    assert html.count(">Read on") == 4
    assert "Keep reading" not in html
    assert "MORE STORIES" in html  # the other templates still come from the defaults


def test_issue_may_name_its_own_template(runner: CliRunner, example: Path, project: Path) -> None:
    own = project / "templates"
    own.mkdir()
    (own / "special.mjml.j2").write_text(
        '{% extends "base.mjml.j2" %}{% block content %}<mj-section><mj-column>'
        "<mj-text>Special edition</mj-text></mj-column></mj-section>{% endblock %}"
    )
    issue = example / "issue.md"
    issue.write_text(
        issue.read_text().replace("teasers:", "template: special.mjml.j2\nteasers:", 1)
    )
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 0, result.stderr
    html = (project / "build" / example.name / "index.html").read_text()
    assert "Special edition" in html and "Keep reading" not in html


def test_broken_template_is_reported_with_its_line(
    runner: CliRunner, example: Path, project: Path
) -> None:
    own = project / "templates"
    own.mkdir()
    (own / "footer.mjml.j2").write_text("<mj-section>\n{% if %}\n</mj-section>\n")
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 2
    assert f"{own / 'footer.mjml.j2'}:2: template syntax error" in result.stderr
