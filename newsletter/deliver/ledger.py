"""The delivery ledger: one row per issue and subscriber, so a send never repeats itself.

    queued ──► sending ──► sent
      ▲           │
      └─ 4xx ─────┤──► deferred   (4xx after the last attempt; retried by the next run)
                  └──► failed     (5xx)

`sending` is written at the commit point, just before the server is told to accept the message.
A row still `sending` after a crash is the one uncertain case: the server may or may not have the
message. It is not resent unless the editor asks for it (`--resend-uncertain`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from newsletter.deliver.db import now

RETRYABLE = ("queued", "deferred")


@dataclass(frozen=True)
class Job:
    """One subscriber still to receive the issue."""

    subscriber_id: int
    email: str
    first_name: str
    last_name: str
    attempts: int
    public_id: str = ""


def _segment(tag: str | None) -> tuple[str, list[Any]]:
    if tag is None:
        return "", []
    return (
        " AND s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = ?)",
        [tag],
    )


class Ledger:
    """The ledger rows of one issue. Safe to share between threads (one lock, one connection)."""

    def __init__(self, conn: sqlite3.Connection, issue: str) -> None:
        self.conn = conn
        self.issue = issue
        self._lock = threading.Lock()

    def _write(self, sql: str, params: list[Any]) -> None:
        with self._lock:
            self.conn.execute(sql, params)

    def enqueue(self, tag: str | None = None) -> int:
        """Add a `queued` row for every active subscriber (in the segment) that has none yet."""
        where, params = _segment(tag)
        with self._lock:
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO deliveries (issue, subscriber_id, status, updated_at) "
                f"SELECT ?, s.id, 'queued', ? FROM subscribers s WHERE s.status = 'active'{where}",
                [self.issue, now(), *params],
            )
            return cursor.rowcount

    def _pending_sql(
        self, tag: str | None, uncertain: bool, unqueued: bool
    ) -> tuple[str, list[Any]]:
        statuses = (*RETRYABLE, "sending") if uncertain else RETRYABLE
        where, params = _segment(tag)
        marks = ",".join("?" * len(statuses))
        join, none = ("LEFT JOIN", "d.status IS NULL OR ") if unqueued else ("JOIN", "")
        sql = (
            f"FROM subscribers s {join} deliveries d ON d.subscriber_id = s.id AND d.issue = ? "
            f"WHERE ({none}d.status IN ({marks})) AND s.status = 'active'{where}"
        )
        return sql, [self.issue, *statuses, *params]

    def count_pending(
        self, tag: str | None = None, uncertain: bool = False, unqueued: bool = False
    ) -> int:
        """How many subscribers a run would send to (`unqueued`: counting those not enqueued)."""
        sql, params = self._pending_sql(tag, uncertain, unqueued)
        with self._lock:
            return int(self.conn.execute(f"SELECT count(*) {sql}", params).fetchone()[0])

    def pending(
        self,
        tag: str | None = None,
        uncertain: bool = False,
        batch_size: int = 500,
        unqueued: bool = False,
    ) -> Iterator[Job]:
        """Stream the subscribers still to send to, in id order, a batch at a time.

        `unqueued` also yields active subscribers that have no ledger row yet (for dry runs,
        which must not write).
        """
        sql, params = self._pending_sql(tag, uncertain, unqueued)
        last = 0
        while True:
            with self._lock:
                rows = self.conn.execute(
                    "SELECT s.id, s.email, s.first_name, s.last_name, coalesce(d.attempts, 0), "
                    "s.public_id "
                    f"{sql} AND s.id > ? ORDER BY s.id LIMIT ?",
                    [*params, last, batch_size],
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Job(*row)
            last = rows[-1][0]

    def mark_sending(self, subscriber_id: int, message_id: str, server: str) -> None:
        """Record the commit point: the message is about to become the server's."""
        self._write(
            "UPDATE deliveries SET status = 'sending', message_id = ?, server = ?, "
            "attempts = attempts + 1, updated_at = ? WHERE issue = ? AND subscriber_id = ?",
            [message_id, server, now(), self.issue, subscriber_id],
        )

    def mark(
        self, subscriber_id: int, status: str, reply: str, attempts: int | None = None
    ) -> None:
        """Record an outcome (`sent`, `queued` for a retry, `deferred`, `failed`)."""
        self._write(
            "UPDATE deliveries SET status = ?, last_reply = ?, "
            "attempts = coalesce(?, attempts), updated_at = ? "
            "WHERE issue = ? AND subscriber_id = ?",
            [status, reply, attempts, now(), self.issue, subscriber_id],
        )

    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (0 when none)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT status, count(*) FROM deliveries WHERE issue = ? GROUP BY status",
                [self.issue],
            ).fetchall()
        counts = dict.fromkeys(("queued", "sending", "sent", "deferred", "failed"), 0)
        counts.update({status: n for status, n in rows})
        return counts

    def problems(self, limit: int = 50) -> list[dict[str, Any]]:
        """Failed, deferred and uncertain rows with their last reply, newest first."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT s.email, d.status, d.attempts, d.last_reply, d.message_id, d.updated_at "
                "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.issue = ? AND d.status IN ('failed', 'deferred', 'sending') "
                "ORDER BY d.updated_at DESC LIMIT ?",
                [self.issue, limit],
            ).fetchall()
        return [dict(row) for row in rows]

    def skipped(self, tag: str | None = None) -> tuple[int, int]:
        """(already sent, not active) among the segment, for the run's summary."""
        where, params = _segment(tag)
        with self._lock:
            sent = self.conn.execute(
                "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                f"WHERE d.issue = ? AND d.status = 'sent'{where}",
                [self.issue, *params],
            ).fetchone()[0]
            inactive = self.conn.execute(
                f"SELECT count(*) FROM subscribers s WHERE s.status != 'active'{where}", params
            ).fetchone()[0]
        return int(sent), int(inactive)
