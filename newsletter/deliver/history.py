"""What the database knows about each issue: sent (when, to how many), in progress, overridden.

Test sends never touch the ledger, so an issue counts as sent only once real subscribers got it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from newsletter.deliver import db
from newsletter.deliver.db import now as utc_now
from newsletter.deliver.schedule import Scheduled, ScheduleStore


@dataclass(frozen=True)
class Delivered:
    """The ledger's summary of one issue."""

    sent: int
    pending: int
    last_sent: dt.datetime | None


def delivered(conn: db.Connection) -> dict[str, Delivered]:
    """Per issue in the ledger: copies sent, copies still queued or uncertain, last sent time."""
    rows = conn.execute(
        "SELECT issue, count(*) FILTER (WHERE status = 'sent'), "
        "count(*) FILTER (WHERE status IN ('queued', 'sending')), "
        "max(CASE WHEN status = 'sent' THEN updated_at END) FROM deliveries GROUP BY issue"
    )
    return {
        issue: Delivered(int(sent), int(pending), dt.datetime.fromisoformat(last) if last else None)
        for issue, sent, pending, last in rows
    }


def sent_issues(conn: db.Connection) -> set[str]:
    """The issues at least one real subscriber has been sent."""
    rows = conn.execute("SELECT DISTINCT issue FROM deliveries WHERE status = 'sent'")
    return {issue for (issue,) in rows}


def record_override(conn: db.Connection, issue: str, errors: list[str]) -> None:
    """Remember that `send --force` sent `issue` despite these check errors."""
    conn.execute(
        "INSERT INTO send_overrides (issue, errors, created_at) VALUES (?, ?, ?)",
        [issue, json.dumps(errors), utc_now()],
    )


def overrides(conn: db.Connection, issue: str) -> list[list[str]]:
    """The errors overridden by each forced send of `issue`, oldest first."""
    rows = conn.execute(
        "SELECT errors FROM send_overrides WHERE issue = ? ORDER BY id", [issue]
    ).fetchall()
    return [json.loads(errors) for (errors,) in rows]


def describe(status: str, done: Delivered | None, schedule: Scheduled | None) -> str:
    """An issue's state in a few words: draft, ready, scheduled for …, sending, sent on … to N.

    `schedule` is the issue's latest schedule, if any; one that missed or failed is mentioned
    while the issue has not been sent.
    """
    when = f"{schedule.local_due:%Y-%m-%d %H:%M %Z}" if schedule else ""
    if schedule is not None and schedule.status == "sending":
        return "sending"
    if schedule is not None and schedule.status == "scheduled":
        return f"scheduled for {when}"
    if done is not None and done.pending:
        return f"sending ({done.sent} sent, {done.pending} to go)"
    if done is not None and done.sent and done.last_sent:
        return f"sent on {done.last_sent:%Y-%m-%d %H:%M} UTC to {done.sent}"
    if schedule is not None and schedule.status in ("missed", "failed"):
        return f"{status}; the send scheduled for {when} {schedule.status}: {schedule.result}"
    return status


def states(conn: db.Connection, statuses: dict[str, str]) -> dict[str, str]:
    """The state of each issue (slug → front-matter status) after the database's records."""
    done = delivered(conn)
    every = sorted(ScheduleStore(conn).listing(every=True), key=lambda row: row.id)
    schedules = {row.issue: row for row in every}  # the latest of each issue
    return {
        slug: describe(status, done.get(slug), schedules.get(slug))
        for slug, status in statuses.items()
    }
