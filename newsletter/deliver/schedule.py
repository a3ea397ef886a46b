"""Scheduled sends: rows in the database that a worker claims, sends and closes exactly once.

    scheduled ──claim──► sending ──► sent | failed
        │                   ▲  └─ lease runs out (worker died) ─► claimable again
        ├──► cancelled      │
        └──► missed   (already later than the grace period when a worker started)

A claim is one UPDATE that succeeds for one worker only: it moves a due `scheduled` row (or a
`sending` row whose lease has run out) to `sending` under the worker's name with a lease. The
worker renews the lease while it sends; if it dies, another worker may resume the send once the
lease is over, and the delivery ledger makes sure nobody gets a second copy. All times are UTC,
stored as ISO 8601; every method takes the current time from its caller (an injectable clock).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from newsletter.deliver import db
from newsletter.deliver.db import stored_time
from newsletter.errors import InputError, Problem

#: What the `--at` option accepts (ISO 8601 without a zone: the zone comes separately).
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
#: A time this little in the past is still taken (it passed while the command started up) and
#: sent at once; anything earlier is refused as a mistake.
LATE_START = dt.timedelta(minutes=1)
#: States of a schedule that may still send.
OPEN = ("scheduled", "sending")


def parse_local_time(text: str, zone: str) -> dt.datetime:
    """`2026-12-04 07:00` in time zone `zone` as an aware datetime; InputError if unreadable."""
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(
            Problem(
                f"'{zone}' is not a time zone; use one like Europe/Paris",
                field="--tz",
                code="bad-schedule",
            )
        ) from None
    for layout in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), layout).replace(tzinfo=tz)
        except ValueError:
            continue
    raise InputError(
        Problem(
            f"'{text}' is not a time; write it like 2026-12-04 07:00",
            field="--at",
            code="bad-schedule",
        )
    )


@dataclass(frozen=True)
class Scheduled:
    """One schedule row."""

    id: int
    issue: str
    issue_dir: str
    due_at: dt.datetime
    timezone: str
    tag: str | None
    force: bool
    skip_url_check: bool
    status: str
    worker: str
    result: str

    @property
    def local_due(self) -> dt.datetime:
        """The due time in the zone it was given in."""
        return self.due_at.astimezone(zoneinfo.ZoneInfo(self.timezone))


_COLUMNS = (
    "id, issue, issue_dir, due_at, timezone, tag, force, skip_url_check, status, worker, result"
)


def _row(row: Any) -> Scheduled:
    values = dict(row)
    values["due_at"] = dt.datetime.fromisoformat(values["due_at"])
    values["force"] = bool(values["force"])
    values["skip_url_check"] = bool(values["skip_url_check"])
    return Scheduled(**values)


class ScheduleStore:
    """The schedules table of one database connection."""

    def __init__(self, conn: db.Connection) -> None:
        self.conn = conn

    def add(
        self,
        issue: str,
        issue_dir: str,
        due_at: dt.datetime,
        timezone: str,
        now: dt.datetime,
        *,
        tag: str | None = None,
        force: bool = False,
        skip_url_check: bool = False,
    ) -> Scheduled:
        """Record a send of `issue` at `due_at`; InputError if it is already scheduled or
        `due_at` is more than LATE_START before `now`."""
        if due_at < now - LATE_START:
            raise InputError(
                Problem(
                    "that time is in the past; give a later one", field="--at", code="bad-schedule"
                )
            )
        if self.open_for(issue):
            raise InputError(
                Problem(
                    f"{issue} is already scheduled; cancel it first with "
                    "'newsletter schedule cancel'",
                    field="--at",
                    code="bad-schedule",
                )
            )
        schedule_id = self.conn.insert(
            "INSERT INTO schedules (issue, issue_dir, due_at, timezone, tag, force, "
            "skip_url_check, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [issue, issue_dir, stored_time(due_at), timezone, tag, force, skip_url_check,
             stored_time(now), stored_time(now)],
        )  # fmt: skip
        return self.get(int(schedule_id or 0))

    def get(self, schedule_id: int) -> Scheduled:
        """One schedule by its number; InputError if there is none."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE id = ?", [schedule_id]
        ).fetchone()
        if row is None:
            raise InputError(
                Problem(f"there is no schedule number {schedule_id}", code="not-found")
            )
        return _row(row)

    def listing(self, *, every: bool = False) -> list[Scheduled]:
        """Open schedules (or `every` one), soonest first."""
        where = "" if every else f"WHERE status IN {OPEN!r}"
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM schedules {where} ORDER BY due_at, id")
        return [_row(row) for row in rows]

    def open_for(self, issue: str) -> Scheduled | None:
        """The schedule of `issue` that may still send, if any."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE issue = ? AND status IN {OPEN!r}", [issue]
        ).fetchone()
        return _row(row) if row else None

    def cancel(self, schedule_id: int, now: dt.datetime) -> Scheduled:
        """Cancel a schedule that has not started; InputError otherwise."""
        cursor = self.conn.execute(
            "UPDATE schedules SET status = 'cancelled', updated_at = ? "
            "WHERE id = ? AND status = 'scheduled'",
            [stored_time(now), schedule_id],
        )
        found = self.get(schedule_id)
        if cursor.rowcount != 1:
            raise InputError(
                Problem(
                    f"schedule {schedule_id} is {found.status}; only a waiting one can stop",
                    code="bad-schedule",
                )
            )
        return found

    def mark_missed(self, now: dt.datetime, grace: dt.timedelta) -> list[Scheduled]:
        """Close every waiting schedule due longer than `grace` ago as `missed`; return them."""
        limit = stored_time(now - grace)
        rows = self.conn.execute(
            "UPDATE schedules SET status = 'missed', updated_at = ?, result = ? "
            f"WHERE status = 'scheduled' AND due_at < ? RETURNING {_COLUMNS}",
            [stored_time(now), "not sent: the worker was not running at the time", limit],
        ).fetchall()
        return [_row(row) for row in rows]

    def claim_due(self, worker: str, now: dt.datetime, lease: dt.timedelta) -> Scheduled | None:
        """Claim the next due schedule for `worker`, or None; one UPDATE, so one winner."""
        moment = stored_time(now)
        candidates = self.conn.execute(
            "SELECT id FROM schedules WHERE (status = 'scheduled' AND due_at <= ?) "
            "OR (status = 'sending' AND lease_until < ?) ORDER BY due_at, id",
            [moment, moment],
        ).fetchall()
        for (schedule_id,) in candidates:
            cursor = self.conn.execute(
                "UPDATE schedules SET status = 'sending', worker = ?, lease_until = ?, "
                "updated_at = ? WHERE id = ? AND ((status = 'scheduled' AND due_at <= ?) "
                "OR (status = 'sending' AND lease_until < ?))",
                [worker, stored_time(now + lease), moment, schedule_id, moment, moment],
            )
            if cursor.rowcount == 1:
                return self.get(schedule_id)
        return None

    def renew(self, schedule_id: int, worker: str, now: dt.datetime, lease: dt.timedelta) -> bool:
        """Extend the lease of a claim this worker still holds; False if it lost it."""
        cursor = self.conn.execute(
            "UPDATE schedules SET lease_until = ?, updated_at = ? "
            "WHERE id = ? AND worker = ? AND status = 'sending'",
            [stored_time(now + lease), stored_time(now), schedule_id, worker],
        )
        return cursor.rowcount == 1

    def finish(
        self, schedule_id: int, worker: str, status: str, result: str, now: dt.datetime
    ) -> None:
        """Close a claim held by `worker` as `sent` or `failed`, with what happened."""
        self.conn.execute(
            "UPDATE schedules SET status = ?, result = ?, lease_until = '', updated_at = ? "
            "WHERE id = ? AND worker = ? AND status = 'sending'",
            [status, result, stored_time(now), schedule_id, worker],
        )
