"""`newsletter report`: how an issue did (or the whole list, week by week)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.errors import InputError, Problem

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.analytics.figures import IssueReport, ListReport


def _slug(issue: Path) -> str:
    return issue.resolve().name if issue.is_dir() or not issue.suffix else issue.stem


def _print_issue(report: IssueReport) -> None:
    out = console.out
    out.print(f"[bold]{escape(report.issue)}[/]")
    out.print(
        f"Delivered {report.delivered}, deferred {report.deferred}, failed {report.failed}, "
        f"uncertain {report.uncertain}, still queued {report.queued}"
    )
    out.print(
        f"Bounces: {report.hard_bounces} hard, {report.soft_bounces} soft; "
        f"complaints {report.complaints}; unsubscribed from this issue {report.unsubscribes}"
    )
    out.print(f"Clicks: {report.clicks_people} by people, {report.clicks_bots} by scanners")
    if report.opens is not None:
        out.print(f"Image loads ('opens'): {report.opens}. {report.opens_caveat}")
    if report.links:
        table = Table("link", "people", "scanners")
        for link in report.links:
            table.add_row(escape(link.url), str(link.people), str(link.bots))
        out.print(table)


def _print_list(report: ListReport) -> None:
    statuses = ("active", "pending", "unsubscribed", "bounced", "complained")
    table = Table("week of", *statuses)
    for week in report.weeks:
        table.add_row(week["week"], *(str(week.get(status, 0)) for status in statuses))
    console.out.print(table)
    console.out.print(
        "Now: " + ", ".join(f"{report.totals.get(status, 0)} {status}" for status in statuses)
    )


@reports_errors
def report(
    issue: Annotated[
        Path | None, typer.Argument(help="The issue folder (or its slug); none: the whole list.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page here.")
    ] = None,
    hours: Annotated[int, typer.Option(min=1, max=24 * 14, help="Hours in the timeline.")] = 48,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """How an issue did: delivery, bounces, complaints, unsubscribes, clicks (never per reader)."""
    from newsletter.analytics.figures import issue_report, list_report
    from newsletter.analytics.page import report_page
    from newsletter.config import load_config
    from newsletter.deliver.db import connect

    settings = load_config(config, start=issue if issue and issue.is_dir() else Path("."))
    conn = connect(settings.database_location)
    try:
        if issue is None:
            if html is not None:
                raise InputError(
                    Problem("--html needs an issue", field="--html", code="bad-option")
                )
            whole = list_report(conn)
            console.print_json(whole.as_dict()) if json else _print_list(whole)
            return
        figures = issue_report(conn, _slug(issue), hours=hours, opens=settings.analytics.opens)
    finally:
        conn.close()
    if html is not None:
        try:
            html.write_text(report_page(figures, settings), encoding="utf-8")
        except OSError as exc:
            raise InputError(
                Problem(f"cannot write it: {exc.strerror}", path=html, code="unreadable-file")
            ) from None
    if json:
        console.print_json(figures.as_dict())
    else:
        _print_issue(figures)
        if html is not None:
            console.out.print(f"Report page: {html}")
