"""The delivery ledger: one row per issue and subscriber, so a send never repeats itself.

    queued ──► sending ──► sent
      ▲           │
      └─ 4xx ─────┤──► deferred   (4xx after the last attempt; retried by the next run)
                  └──► failed     (5xx, or an error while rendering or handing over the copy)

`sending` is written at the commit point, just before the server is told to accept the message.
A row left `sending` is the one uncertain case: the process was killed, or the connection lost,
after the message was handed over and before the server's reply. The server may or may not have
the message, so it is not resent unless the editor asks for it (`--resend-uncertain`).

The ledger is also a queue shared by any number of processes. A process *claims* a batch of
rows (`claimed_by`, `lease_until`) in one short transaction, renews its lease while it works,
and releases what it hands back; only rows whose lease has expired (or whose claimant, a process
on this host, no longer exists) can be claimed again. A claimed row that reached `sending`
is never claimed again automatically: when its lease runs out it is uncertain. Every
write at the commit point checks that the claim still holds, so a process whose lease was taken
over never sends. The claim logic lives only here. On SQLite a claim's write transaction keeps
every other writer out; on PostgreSQL the claiming SELECT locks its rows `FOR UPDATE SKIP
LOCKED`, so concurrent senders each take different rows without waiting for one another.

Durability: SQLite runs in WAL mode with `synchronous = NORMAL` (a commit survives the
process being killed), and the commit point alone is written with `synchronous = FULL` (every
PostgreSQL commit is durable already), so that it also survives a power cut: a copy the server
may have is never forgotten and resent. The commit points of concurrent workers are written
together (group commit) to share one fsync.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from newsletter.deliver import db
from newsletter.deliver.db import failure
from newsletter.deliver.segments import Segment
from newsletter.errors import DatabaseError, NewsletterError

RETRYABLE = ("queued", "deferred")
STATUSES = ("queued", "sending", "sent", "deferred", "failed")
P = ParamSpec("P")
R = TypeVar("R")


class ClaimLost(NewsletterError):
    """Another process took over this row (our lease ran out): the copy must not be sent."""


@dataclass(frozen=True)
class Job:
    """One subscriber still to receive the issue."""

    subscriber_id: int
    email: str
    first_name: str
    last_name: str
    attempts: int
    public_id: str = ""


@dataclass
class _CommitPoint:
    """One worker's commit point, waiting for the group commit that writes it."""

    params: tuple[Any, ...]
    changed: int = 0
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class SendRecord:
    """How an issue's send was started; a resume continues exactly this."""

    transport: str
    relays: str = ""
    segment: Segment = field(default_factory=Segment)
    rate: str = ""
    connections: int = 0


def stamp() -> str:
    """The current UTC time for ledger rows, to the millisecond (so that a run can tell the
    rows it touched from those touched before it started)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _segment(segment: Segment | None, dialect: db.Dialect) -> tuple[str, list[Any]]:
    return segment.sql(dialect) if segment is not None else ("", [])


def _database(method: Callable[P, R]) -> Callable[P, R]:
    """Turn SQLite's operational errors (full disk, read-only, locked) into one clear line."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            ledger: Ledger = args[0]  # type: ignore[assignment]
            raise failure(exc, ledger.path) from None

    return wrapper


def alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie, dead but not yet collected by
    its parent, does not: its claims can go at once)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no /proc here: the signal's answer is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"


class Ledger:
    """The ledger rows of one issue. Safe to share between threads (one lock, one connection).

    `owner` names this process in its claims (host:pid:random); `lease` is how long, in
    seconds, a claim holds without being renewed.
    """

    def __init__(
        self,
        conn: db.Connection,
        issue: str,
        *,
        lease: float = 60.0,
        durable_commit_point: bool = True,
    ) -> None:
        self.conn = conn
        self.issue = issue
        self.lease = lease
        self.durable_commit_point = durable_commit_point
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._pending: list[_CommitPoint] = []
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.path = conn.where

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """One bookkeeping write (an outcome, a lease): it must survive this process, not
        necessarily the machine, since only the commit point decides what is resent."""
        with self._lock, self.conn.relaxed():
            return int(self.conn.execute(sql, params).rowcount)

    @_database
    def enqueue(self, segment: Segment | None = None) -> int:
        """Add a `queued` row for every active subscriber (in the segment) that has none yet."""
        where, params = _segment(segment, self.conn.dialect)
        with self._lock:
            cursor = self.conn.execute(
                "INSERT INTO deliveries (issue, subscriber_id, status, updated_at) "
                "SELECT CAST(? AS TEXT), s.id, 'queued', CAST(? AS TEXT) FROM subscribers s "
                f"WHERE s.status = 'active'{where} ON CONFLICT DO NOTHING",
                [self.issue, stamp(), *params],
            )
            return cursor.rowcount

    def _pending_sql(
        self, segment: Segment | None, uncertain: bool, unqueued: bool
    ) -> tuple[str, list[Any]]:
        statuses = (*RETRYABLE, "sending") if uncertain else RETRYABLE
        where, params = _segment(segment, self.conn.dialect)
        marks = ",".join("?" * len(statuses))
        join, none = ("LEFT JOIN", "d.status IS NULL OR ") if unqueued else ("JOIN", "")
        sql = (
            f"FROM subscribers s {join} deliveries d ON d.subscriber_id = s.id AND d.issue = ? "
            f"WHERE ({none}d.status IN ({marks})) AND s.status = 'active'{where}"
        )
        return sql, [self.issue, *statuses, *params]

    @_database
    def count_pending(
        self, segment: Segment | None = None, uncertain: bool = False, unqueued: bool = False
    ) -> int:
        """How many subscribers a run would send to (`unqueued`: counting those not enqueued)."""
        sql, params = self._pending_sql(segment, uncertain, unqueued)
        with self._lock:
            return int(self.conn.execute(f"SELECT count(*) {sql}", params).fetchone()[0])

    def pending(
        self,
        segment: Segment | None = None,
        uncertain: bool = False,
        batch_size: int = 500,
        unqueued: bool = False,
    ) -> Iterator[Job]:
        """Stream the subscribers still to send to, in id order, a batch at a time, without
        claiming them (for dry runs; `unqueued` also yields those with no ledger row yet)."""
        sql, params = self._pending_sql(segment, uncertain, unqueued)
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

    # -- the queue: claims and leases -------------------------------------------------------

    def _release_dead_claims(self, moment: float) -> None:
        """Expire the leases of claimants on this host whose process no longer exists."""
        host = socket.gethostname()
        owners = self.conn.execute(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE issue = ? AND lease_until > ? "
            "AND claimed_by != ?",
            [self.issue, moment, self.owner],
        ).fetchall()
        for (owner,) in owners:
            owner_host, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            if owner_host == host and pid.isdigit() and not alive(int(pid)):
                self.conn.execute(
                    "UPDATE deliveries SET lease_until = 0 WHERE issue = ? AND claimed_by = ?",
                    [self.issue, owner],
                )

    @_database
    def reap(self) -> None:
        """Free the claims of processes on this host that no longer exist."""
        with self._lock:
            self.conn.begin()
            try:
                self._release_dead_claims(time.time())
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @_database
    def claim(
        self,
        limit: int,
        *,
        segment: Segment | None = None,
        uncertain: bool = False,
        before: str = "",
        reap: bool = False,
    ) -> list[Job]:
        """Claim up to `limit` rows to send, in one short transaction.

        Claimable: `queued` rows, and `deferred` rows (and with `uncertain`, `sending` ones)
        last touched before `before` (the run's start, so a run does not retry what it has
        just given up on), whose lease has expired. `reap` first frees the claims of dead
        processes on this host.
        """
        moment = time.time()
        where, params = _segment(segment, self.conn.dialect)
        others = "'deferred', 'sending'" if uncertain else "'deferred'"
        with self._lock, self.conn.relaxed():
            self.conn.begin()
            try:
                if reap:
                    self._release_dead_claims(moment)
                rows = self.conn.execute(
                    "SELECT s.id, s.email, s.first_name, s.last_name, d.attempts, s.public_id "
                    "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                    f"WHERE d.issue = ? AND (d.status = 'queued' OR (d.status IN ({others}) "
                    "AND d.updated_at < ?)) AND d.lease_until < ? AND s.status = 'active'"
                    f"{where} ORDER BY d.subscriber_id LIMIT ?{self.conn.dialect.skip_locked}",
                    [self.issue, before, moment, *params, limit],
                ).fetchall()
                if rows:
                    marks = ",".join("?" * len(rows))
                    self.conn.execute(
                        "UPDATE deliveries SET claimed_by = ?, lease_until = ? "
                        f"WHERE issue = ? AND subscriber_id IN ({marks})",
                        [self.owner, moment + self.lease, self.issue, *(row[0] for row in rows)],
                    )
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        return [Job(*row) for row in rows]

    @_database
    def renew(self) -> None:
        """Extend the lease of every row this process holds."""
        self._write(
            "UPDATE deliveries SET lease_until = ? WHERE issue = ? AND claimed_by = ? "
            "AND lease_until > 0 AND status IN ('queued', 'sending')",
            [time.time() + self.lease, self.issue, self.owner],
        )

    @_database
    def release(self, subscriber_ids: Sequence[int] = ()) -> None:
        """Hand rows back (all this process holds when none are named): they can be claimed
        at once, and a `sending` row among them is uncertain from now on."""
        if subscriber_ids:
            with self._lock:
                self.conn.executemany(
                    "UPDATE deliveries SET lease_until = 0 "
                    "WHERE issue = ? AND subscriber_id = ? AND claimed_by = ?",
                    [(self.issue, sid, self.owner) for sid in subscriber_ids],
                )
            return
        self._write(
            "UPDATE deliveries SET lease_until = 0 WHERE issue = ? AND claimed_by = ? "
            "AND lease_until > 0",
            [self.issue, self.owner],
        )

    @_database
    def held_elsewhere(self, statuses: Sequence[str] = ("queued", "sending")) -> list[str]:
        """The other processes holding live claims on rows of this issue in `statuses`."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self.conn.execute(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE issue = ? AND lease_until > ? "
                f"AND claimed_by != ? AND status IN ({marks})",
                [self.issue, time.time(), self.owner, *statuses],
            ).fetchall()
        return [row[0] for row in rows]

    # -- outcomes ---------------------------------------------------------------------------

    def mark_sending(self, subscriber_id: int, message_id: str, server: str) -> None:
        """Record the commit point: the message is about to become the server's.

        Group commit: the commit points of every worker that arrives while one is being
        written go into the next transaction together, so they share one fsync. Raises
        ClaimLost when this process no longer holds the row's claim.
        """
        entry = _CommitPoint((message_id, server, stamp(), self.issue, subscriber_id, self.owner))
        with self._pending_lock:
            self._pending.append(entry)
        while not entry.done.is_set():
            if self._commit_lock.acquire(timeout=0.05):
                try:
                    with self._pending_lock:
                        batch, self._pending = self._pending, []
                    if batch:
                        self._commit(batch)
                finally:
                    self._commit_lock.release()
        if entry.error is not None:
            raise entry.error
        if not entry.changed:
            raise ClaimLost(f"the claim on subscriber {subscriber_id} was lost")

    def _commit(self, batch: list[_CommitPoint]) -> None:
        """Write a batch of commit points in one transaction (synchronous=FULL if durable)."""
        moment = time.time()
        try:
            durable = self.conn.durable() if self.durable_commit_point else nullcontext()
            with self._lock, durable:
                try:
                    self.conn.begin()
                    for entry in batch:
                        entry.changed = self.conn.execute(
                            "UPDATE deliveries SET status = 'sending', message_id = ?, "
                            "server = ?, attempts = attempts + 1, updated_at = ? WHERE issue = ? "
                            "AND subscriber_id = ? AND claimed_by = ? AND lease_until > ?",
                            [*entry.params, moment],
                        ).rowcount
                    self.conn.execute("COMMIT")
                finally:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
        except (sqlite3.OperationalError, DatabaseError) as exc:
            error = exc if isinstance(exc, DatabaseError) else failure(exc, self.path)
            for entry in batch:
                entry.changed, entry.error = 0, error
        finally:
            for entry in batch:
                entry.done.set()

    @_database
    def mark(
        self, subscriber_id: int, status: str, reply: str, attempts: int | None = None
    ) -> None:
        """Record an outcome (`sent`, `queued` for a retry this process keeps, `deferred`,
        `failed`) of a row this process holds; only `queued` keeps the claim."""
        self._write(
            "UPDATE deliveries SET status = ?, last_reply = ?, "
            "attempts = coalesce(?, attempts), updated_at = ?, "
            "lease_until = CASE WHEN ? = 'queued' THEN lease_until ELSE 0 END "
            "WHERE issue = ? AND subscriber_id = ? AND claimed_by = ?",
            [status, reply, attempts, stamp(), status, self.issue, subscriber_id, self.owner],
        )

    @_database
    def mark_uncertain(self, subscriber_id: int, reply: str) -> None:
        """The reply to a handed-over copy was lost: it stays `sending`, released, uncertain."""
        self._write(
            "UPDATE deliveries SET last_reply = ?, lease_until = 0, updated_at = ? "
            "WHERE issue = ? AND subscriber_id = ? AND status = 'sending' AND claimed_by = ?",
            [reply, stamp(), self.issue, subscriber_id, self.owner],
        )

    # -- what the ledger says ---------------------------------------------------------------

    @_database
    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (0 when none)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT status, count(*) FROM deliveries WHERE issue = ? GROUP BY status",
                [self.issue],
            ).fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: n for status, n in rows})
        return counts

    @_database
    def uncertain(self) -> int:
        """Rows left `sending` by a process that is gone or lost the reply (lease over)."""
        with self._lock:
            return int(
                self.conn.execute(
                    "SELECT count(*) FROM deliveries WHERE issue = ? AND status = 'sending' "
                    "AND lease_until < ?",
                    [self.issue, time.time()],
                ).fetchone()[0]
            )

    @_database
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

    @_database
    def skipped(self, segment: Segment | None = None) -> tuple[int, int]:
        """(already sent, not active) among the segment, for the run's summary."""
        where, params = _segment(segment, self.conn.dialect)
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

    # -- how the send was started -----------------------------------------------------------

    @_database
    def record(self) -> SendRecord | None:
        """How this issue's latest send was started, if one was."""
        with self._lock:
            row = self.conn.execute(
                "SELECT transport, relays, segment, rate, connections FROM sends WHERE issue = ?",
                [self.issue],
            ).fetchone()
        if row is None:
            return None
        return SendRecord(row[0], row[1], Segment.decode(row[2]), row[3], row[4])

    @_database
    def first_started(self) -> str:
        """When the issue's first send started ('' if it never did): a catch-up reaches those
        who became active after it."""
        with self._lock:
            row = self.conn.execute(
                "SELECT started_at FROM sends WHERE issue = ?", [self.issue]
            ).fetchone()
        return str(row[0]) if row else ""

    @_database
    def save_record(self, record: SendRecord, *, replace: bool = False) -> SendRecord:
        """Remember how the send was started (`replace`: overwrite an earlier record, keeping
        the time the first send started); returns the record in force, which is another
        process's when it got there first."""
        update = (
            "DO UPDATE SET transport = excluded.transport, relays = excluded.relays, "
            "tag = excluded.tag, segment = excluded.segment, rate = excluded.rate, "
            "connections = excluded.connections, updated_at = excluded.updated_at"
            if replace
            else "DO NOTHING"
        )
        moment = stamp()
        segment = record.segment
        with self._lock:
            self.conn.execute(
                "INSERT INTO sends (issue, transport, relays, tag, segment, rate, connections, "
                f"started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT (issue) {update}",
                [self.issue, record.transport, record.relays, ",".join(segment.tags),
                 segment.encode(), record.rate, record.connections, moment, moment],
            )  # fmt: skip
        saved = self.record()
        assert saved is not None
        return saved

    @_database
    def has_rows(self) -> bool:
        """Whether any copy of this issue was ever queued."""
        with self._lock:
            return (
                self.conn.execute(
                    "SELECT 1 FROM deliveries WHERE issue = ? LIMIT 1", [self.issue]
                ).fetchone()
                is not None
            )
