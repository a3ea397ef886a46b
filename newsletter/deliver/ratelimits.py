"""Rate limits kept in the database, so that every web worker process counts the same events.

Each limited thing (a client's IP address, an address signing up) has one row in
`rate_limits`, named by a keyed hash: HMAC-SHA256 of the limit's name and the value, with a key
derived from the project's signing key, so the table names nobody. The row holds the times of
the events inside the window, at most `count` of them: a new event is allowed while fewer than
`count` happened in the last `seconds` (a sliding window, exact, as the in-memory limit was).

One short write transaction per check. Its first statement, an upsert, locks the key's row
(PostgreSQL keeps the lock until COMMIT; SQLite's `BEGIN IMMEDIATE` excludes every other
writer), so two workers checking the same key at once are served one after the other. Rows
whose window has passed are deleted a few at a time by the checks themselves, skipping rows
another transaction holds, so the table stays as small as the set of recent clients.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from newsletter.deliver import db

#: Expired rows one check deletes at most.
SWEEP = 100


@dataclass(frozen=True)
class Limit:
    """At most `count` events per `seconds` for each value, under one `name`."""

    name: str
    count: int
    seconds: float


def key_hash(key: bytes, limit: Limit, value: str) -> str:
    """The name of `value`'s row: a keyed hash, never the value itself."""
    message = f"{limit.name}\0{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def allow(conn: db.Connection, key: bytes, limit: Limit, value: str, now: float) -> bool:
    """Record an event for `value` at `now` (seconds since the epoch); False, recording
    nothing, if `limit.count` events already happened in the `limit.seconds` before it."""
    name = key_hash(key, limit, value)
    conn.begin()
    try:
        row = conn.execute(
            "INSERT INTO rate_limits (hash, hits, expires_at) VALUES (?, '', ?)"
            " ON CONFLICT (hash) DO UPDATE SET expires_at = rate_limits.expires_at"
            " RETURNING hits",
            (name, now),
        ).fetchone()
        hits = [float(hit) for hit in str(row[0]).split()]
        recent = [hit for hit in hits if hit > now - limit.seconds]
        allowed = len(recent) < limit.count
        if allowed:
            recent.append(now)
        if allowed or len(recent) < len(hits):
            kept = " ".join(f"{hit:.3f}" for hit in recent)
            expires = max(recent, default=now) + limit.seconds
            conn.execute(
                "UPDATE rate_limits SET hits = ?, expires_at = ? WHERE hash = ?",
                (kept, expires, name),
            )
        _sweep(conn, now)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return allowed


def _sweep(conn: db.Connection, now: float) -> None:
    """Delete a few rows whose every event is older than their limit's window."""
    conn.execute(
        "DELETE FROM rate_limits WHERE hash IN (SELECT d.hash FROM rate_limits d"
        f" WHERE d.expires_at < ? LIMIT {SWEEP}{conn.dialect.skip_locked})",
        (now,),
    )
