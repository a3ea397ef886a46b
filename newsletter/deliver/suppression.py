"""The suppression list: people who left stay out, even after their data is erased.

When someone who unsubscribed, bounced or complained is erased (or anyone is erased at their
request), only a keyed hash of their address stays: HMAC-SHA256 with a random key made once
per database, so the list names nobody, yet an import or `add` of the same address later is
refused. Signing up again through double opt-in is the one way back: confirming lifts it.
"""

from __future__ import annotations

import hashlib
import hmac

from newsletter.deliver import db

_KEY = "suppression_key"


def _key(conn: db.Connection) -> bytes:
    row = conn.execute("SELECT value FROM suppression_meta WHERE name = ?", (_KEY,)).fetchone()
    return bytes.fromhex(row[0])


def address_hash(conn: db.Connection, email: str) -> str:
    """The keyed hash that stands for a (normalised) address on the list."""
    return hmac.new(_key(conn), email.casefold().encode("utf-8"), hashlib.sha256).hexdigest()


def suppressed(conn: db.Connection, email: str) -> str | None:
    """Why this address may not be added back (the status it left with), or None."""
    row = conn.execute(
        "SELECT status FROM suppressions WHERE hash = ?", (address_hash(conn, email),)
    ).fetchone()
    return str(row[0]) if row else None


def any_suppressed(conn: db.Connection) -> bool:
    """Whether the list holds anyone (an import skips the per-address check if not)."""
    return conn.execute("SELECT 1 FROM suppressions LIMIT 1").fetchone() is not None


def suppress(conn: db.Connection, email: str, status: str, reason: str) -> None:
    """Keep this address out (its hash only), remembering the status it left with."""
    conn.execute(
        "INSERT INTO suppressions (hash, status, reason, suppressed_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (hash) DO UPDATE SET status = excluded.status,"
        " reason = excluded.reason, suppressed_at = excluded.suppressed_at",
        (address_hash(conn, email), status, reason, db.now()),
    )


def lift(conn: db.Connection, email: str) -> None:
    """Let this address back in (it confirmed a new sign-up)."""
    conn.execute("DELETE FROM suppressions WHERE hash = ?", (address_hash(conn, email),))
