"""Sending later: `newsletter send --at` records a schedule; `newsletter schedule list|cancel`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.compose.build import BuiltIssue
    from newsletter.compose.models import Issue
    from newsletter.config import Config
    from newsletter.deliver.schedule import Scheduled, ScheduleStore

schedule_app = typer.Typer(help="Sends scheduled with send --at: list them, cancel one.")


def _store(config: Config) -> ScheduleStore:
    from newsletter.deliver.db import connect
    from newsletter.deliver.schedule import ScheduleStore

    return ScheduleStore(connect(config.database_location))


def _relative(config: Config, folder: Path) -> str:
    folder = folder.resolve()
    root = config.root.resolve()
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


def due_time(config: Config, at: str, tz: str | None) -> tuple[dt.datetime, str]:
    """The time `--at` names, in the zone of `--tz` or the config, and that zone's name."""
    from newsletter.deliver.schedule import parse_local_time

    zone = tz or config.schedule.timezone
    return parse_local_time(at, zone), zone


def schedule_send(
    config: Config, issue: Issue, due: tuple[dt.datetime, str], asked: dt.datetime, *,
    tag: str | None, force: bool, skip: bool, as_json: bool,
) -> Scheduled:  # fmt: skip
    """Record a send of `issue` at `due` (time, zone), which must be later than `asked`."""
    row = _store(config).add(
        issue.slug, _relative(config, issue.folder), due[0], due[1], asked,
        tag=tag, force=force, skip_url_check=skip,
    )  # fmt: skip
    if as_json:
        console.print_json(_as_json(row))
    else:
        console.out.print(
            f"Scheduled {escape(row.issue)} for {row.local_due:%Y-%m-%d %H:%M %Z} "
            f"(schedule {row.id}). It goes out when 'newsletter worker' (or serve) is running."
        )
    return row


def warn_unpublished(config: Config, built: BuiltIssue) -> None:
    """Warn (only) about published files that do not answer yet: they may be by the due time."""
    from newsletter.checks.urls import published_urls, unreachable

    missing = unreachable(published_urls(built.html, config.base_url))
    if missing:
        console.warning(
            f"{len(missing)} image(s) or link(s) under base_url do not answer yet, such as "
            f"{escape(missing[0][0])}; run 'newsletter archive' and 'newsletter publish' before "
            "the send is due, or it will stop"
        )


def _as_json(row: Scheduled) -> dict[str, object]:
    return {
        "id": row.id,
        "issue": row.issue,
        "due": row.local_due.isoformat(),
        "status": row.status,
        "tag": row.tag,
        "result": row.result,
    }


@schedule_app.command("list")
@reports_errors
def list_schedules(
    every: Annotated[bool, typer.Option("--all", help="Also the finished ones.")] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The scheduled sends, soonest first."""
    from newsletter.config import load_config
    from newsletter.deliver.segments import Segment

    rows = _store(load_config(config)).listing(every=every)
    if json:
        console.print_json([_as_json(row) for row in rows])
        return
    if not rows:
        console.out.print("Nothing is scheduled.")
        return
    table = Table("#", "issue", "due", "status", "segment", "result")
    for row in rows:
        table.add_row(str(row.id), row.issue, f"{row.local_due:%Y-%m-%d %H:%M %Z}", row.status,
                      Segment.decode(row.tag).describe(), row.result)  # fmt: skip
    console.out.print(table)


@schedule_app.command("cancel")
@reports_errors
def cancel(
    schedule_id: Annotated[int, typer.Argument(help="The schedule's number (schedule list).")],
    config: ConfigOption = None,
) -> None:
    """Cancel a scheduled send that has not started."""
    from newsletter.config import load_config
    from newsletter.deliver.worker import utc_clock

    row = _store(load_config(config)).cancel(schedule_id, utc_clock())
    console.out.print(f"Cancelled schedule {row.id} ({escape(row.issue)}).")
