"""`newsletter status` without an issue: every issue and where it stands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.errors import InputError

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.config import Config


def issue_statuses(config: Config) -> dict[str, str]:
    """Each issue folder's front-matter status (`unreadable` if it cannot be loaded)."""
    from newsletter.compose.issues import find_issues, load_issue

    statuses: dict[str, str] = {}
    for folder in find_issues(config.root):
        try:
            statuses[folder.name] = load_issue(folder).status
        except InputError:
            statuses[folder.name] = "unreadable (run newsletter check on it)"
    return statuses


def print_overview(config: Config, as_json: bool) -> None:
    """List every issue with its state: draft, ready, scheduled for …, sending, sent on … to N."""
    from newsletter.deliver.db import connect
    from newsletter.deliver.history import states

    rows = states(connect(config.database_location), issue_statuses(config))
    if as_json:
        console.print_json([{"issue": slug, "state": state} for slug, state in rows.items()])
        return
    if not rows:
        console.out.print("No issues yet: create one with newsletter new TITLE")
        return
    table = Table("issue", "state")
    for slug, state in rows.items():
        table.add_row(escape(slug), escape(state))
    console.out.print(table)
