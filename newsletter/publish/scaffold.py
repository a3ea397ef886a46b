"""`newsletter new`: a fresh issue folder with a commented issue.md to fill in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from slugify import slugify

from newsletter.compose.issues import ISSUE_FILE
from newsletter.compose.templates import make_environment, render
from newsletter.errors import IssueError, Problem

SCAFFOLD_TEMPLATE = "scaffold/issue.md.j2"


def issue_slug(title: str, date: dt.date) -> str:
    """`2026-11-24-france-welcomes-its-first-chechen-refugee` from a title and a date."""
    words = slugify(title, max_length=60, word_boundary=True)
    if not words:
        raise IssueError(
            Problem("the title has no letters or digits to name the folder after", code="bad-input")
        )
    return f"{date.isoformat()}-{words}"


def new_issue(title: str, issues_dir: Path, project_root: Path, date: dt.date) -> Path:
    """Create `issues_dir/<date>-<slug>/issue.md` (and images/); refuse to overwrite."""
    folder = issues_dir / issue_slug(title, date)
    if folder.exists():
        raise IssueError(
            Problem(
                "this issue folder exists already; pick another title or date",
                folder,
                code="output-folder",
            )
        )
    text = render(
        make_environment(project_root),
        SCAFFOLD_TEMPLATE,
        {"title": title.replace("\\", "\\\\").replace('"', '\\"'), "date": date.isoformat()},
    )
    (folder / "images").mkdir(parents=True)
    (folder / ISSUE_FILE).write_text(text, encoding="utf-8")
    return folder
