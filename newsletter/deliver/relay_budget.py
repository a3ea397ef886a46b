"""Where a relay's sending slots come from: the database, shared by every sending process.

Each relay has one bucket, kept as a single time (`relay_budget.next_slot`, seconds since the
epoch): the earliest moment the next message may be handed to that relay. Taking `count` slots
`spacing` seconds apart (`spacing` = 1 / rate) is one statement: the slots start at the later
of now and `next_slot`, and `next_slot` moves past the last of them. This is a token bucket
that holds one token and gains one every `spacing` seconds (the "virtual scheduling" form of
the generic cell rate algorithm): slots handed to different processes never overlap, so all
the processes together are given at most ceil(rate * W) slots in any W seconds, however many
take slots and however many each takes at once. An idle relay saves up nothing: the first
slot after a pause is now, never a burst.

A process that dies holding slots wastes at most the slots it had taken (a tenth of a second's
worth, see `sender.RateLimiter`); nothing has to expire, since a bucket is a point in time.

The bucket is kept on the database's clock (`Dialect.clock`): each process turns the slots it
is given into its own clock by the difference it sees between the two in the same answer, so
sending machines need not keep their clocks in step (only the round trip's jitter remains).

`LocalBudget` is the same bucket in this process's memory, for a send with no database at hand.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from newsletter.deliver import db
from newsletter.deliver.db import failure


def _take(dialect: db.Dialect) -> str:
    """Take `count` slots for a relay (parameters: relay, span, span); returns where its bucket
    now stands (after the last slot) and the database's clock, both in its seconds."""
    clock = dialect.clock
    return (
        f"INSERT INTO relay_budget (relay, next_slot) VALUES (?, {clock} + ?) "
        "ON CONFLICT (relay) DO UPDATE SET next_slot = "
        f"CASE WHEN relay_budget.next_slot > {clock} THEN relay_budget.next_slot "
        f"ELSE {clock} END + ? RETURNING next_slot, {clock}"
    )


class Budget(Protocol):
    """A source of sending slots for relays."""

    def take(self, relay: str, count: int, spacing: float) -> float:
        """Reserve `count` slots `spacing` seconds apart for `relay`; the first one's time
        (seconds since the epoch)."""
        ...


class LocalBudget:
    """The buckets in this process's memory: they hold only among its threads."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, relay: str, count: int, spacing: float) -> float:
        """As `Budget.take`."""
        with self._lock:
            first = max(time.time(), self._next.get(relay, 0.0))
            self._next[relay] = first + count * spacing
        return first


class RelayBudget:
    """The buckets in the project's database, held by every process together.

    It opens its own connection (to `location`) when first asked, shared by the process's
    threads; `close()` gives it back.
    """

    def __init__(self, location: Path | str) -> None:
        self.location = location
        self._conn: db.Connection | None = None
        self._lock = threading.Lock()

    def take(self, relay: str, count: int, spacing: float) -> float:
        """As `Budget.take`: one statement, one round trip to the database."""
        span = count * spacing
        with self._lock:
            if self._conn is None:
                self._conn = db.connect(self.location)
            try:
                rows = self._conn.execute(_take(self._conn.dialect), [relay, span, span]).fetchall()
            except sqlite3.OperationalError as exc:
                raise failure(exc, self._conn.where) from None
            here = time.time()
        bucket, there = float(rows[0][0]), float(rows[0][1])
        return bucket - span - (there - here)

    def close(self) -> None:
        """Close the connection, if one was opened."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
