"""The report's figures, read from the database: plain data for the terminal, JSON and HTML.

Per issue: what the ledger says of each copy, what came back (bounces, complaints), who left
through this issue's links, clicks per link (people and bots apart), and the first hours as a
timeline. Over all issues: the list's growth and losses, week by week.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from newsletter.deliver import db

OPENS_CAVEAT = (
    "Opens are counted from an image load, which is unreliable: Apple Mail Privacy Protection "
    "loads every image on arrival (an 'open' without a reader), and many readers block images "
    "(a reader without an 'open'). Read it as a rough trend, never as a count of people."
)


@dataclass(frozen=True)
class LinkClicks:
    """Clicks on one link."""

    url: str
    people: int
    bots: int


@dataclass(frozen=True)
class IssueReport:
    """How one issue did."""

    issue: str
    delivered: int
    deferred: int
    failed: int
    uncertain: int
    queued: int
    hard_bounces: int
    soft_bounces: int
    complaints: int
    unsubscribes: int
    clicks_people: int
    clicks_bots: int
    links: list[LinkClicks]
    timeline: list[dict[str, Any]]
    bot_reasons: dict[str, int]
    opens: int | None = None
    opens_caveat: str | None = None
    first_sent: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class ListReport:
    """The list's growth and losses, week by week, per status."""

    weeks: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def _timeline(
    conn: db.Connection, issue: str, start: str | None, hours: int
) -> list[dict[str, Any]]:
    """Copies delivered and clicks by people and bots in each of the first `hours` hours."""
    if start is None:
        return []
    origin = _parse(start)
    buckets = [{"hour": h, "delivered": 0, "people": 0, "bots": 0} for h in range(hours)]

    def slot(stamp: str) -> int | None:
        index = int((_parse(stamp) - origin).total_seconds() // 3600)
        return index if 0 <= index < hours else None

    sent = conn.execute(
        "SELECT updated_at FROM deliveries WHERE issue = ? AND status = 'sent'", (issue,)
    )
    for (stamp,) in sent:
        if (index := slot(stamp)) is not None:
            buckets[index]["delivered"] += 1
    clicks = conn.execute("SELECT clicked_at, human FROM clicks WHERE issue = ?", (issue,))
    for stamp, human in clicks:
        if (index := slot(stamp)) is not None:
            buckets[index]["people" if human else "bots"] += 1
    return buckets


def issue_report(
    conn: db.Connection, issue: str, *, hours: int = 48, opens: bool = False
) -> IssueReport:
    """Every figure of one issue's report."""
    ledger = dict(
        conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE issue = ? GROUP BY status", (issue,)
        ).fetchall()
    )
    changes = dict(
        conn.execute(
            "SELECT status, count(DISTINCT subscriber_id) FROM status_changes"
            " WHERE issue = ? GROUP BY status",
            (issue,),
        ).fetchall()
    )
    soft = conn.execute(
        "SELECT count(*) FROM inbound_events WHERE issue = ? AND class = 'soft'", (issue,)
    ).fetchone()[0]
    links = [
        LinkClicks(url, int(people), int(bots))
        for url, people, bots in conn.execute(
            "SELECT url, sum(human), sum(1 - human) FROM clicks"
            " WHERE issue = ? AND url NOT LIKE 'canary:%' GROUP BY url"
            " ORDER BY sum(human) DESC, url",
            (issue,),
        )
    ]
    reasons = dict(
        conn.execute(
            "SELECT reason, count(*) FROM clicks WHERE issue = ? AND human = 0"
            " GROUP BY reason ORDER BY count(*) DESC",
            (issue,),
        ).fetchall()
    )
    first = conn.execute(
        "SELECT min(updated_at) FROM deliveries WHERE issue = ? AND status = 'sent'", (issue,)
    ).fetchone()[0]
    open_count: int | None = None
    if opens:
        row = conn.execute("SELECT count(*) FROM opens WHERE issue = ?", (issue,)).fetchone()
        open_count = int(row[0])
    return IssueReport(
        issue=issue,
        delivered=int(ledger.get("sent", 0)),
        deferred=int(ledger.get("deferred", 0)),
        failed=int(ledger.get("failed", 0)),
        uncertain=int(ledger.get("sending", 0)),
        queued=int(ledger.get("queued", 0)),
        hard_bounces=int(changes.get("bounced", 0)),
        soft_bounces=int(soft),
        complaints=int(changes.get("complained", 0)),
        unsubscribes=int(changes.get("unsubscribed", 0)),
        clicks_people=sum(link.people for link in links),
        clicks_bots=sum(reasons.values()),
        links=links,
        timeline=_timeline(conn, issue, first, hours),
        bot_reasons={str(k): int(v) for k, v in reasons.items()},
        opens=open_count,
        opens_caveat=OPENS_CAVEAT if opens else None,
        first_sent=first,
    )


def _week(stamp: str) -> str:
    day = _parse(stamp).date()
    monday = day - dt.timedelta(days=day.weekday())
    return monday.isoformat()


def list_report(conn: db.Connection) -> ListReport:
    """Joins and losses per week (by the status each change moved a reader to)."""
    weeks: dict[str, dict[str, int]] = {}
    for stamp, status in conn.execute("SELECT changed_at, status FROM status_changes"):
        week = weeks.setdefault(_week(stamp), {})
        week[status] = week.get(status, 0) + 1
    totals = dict(conn.execute("SELECT status, count(*) FROM subscribers GROUP BY status"))
    rows = [{"week": week, **counts} for week, counts in sorted(weeks.items())]
    return ListReport(rows, {str(k): int(v) for k, v in totals.items()})


def issues_sent(conn: db.Connection) -> list[str]:
    """Every issue with a ledger, oldest first."""
    rows = conn.execute(
        "SELECT issue FROM deliveries GROUP BY issue ORDER BY min(updated_at), issue"
    )
    return [str(issue) for (issue,) in rows]
