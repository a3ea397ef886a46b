"""The project's SQLite file: opened with safe settings and migrated forward on open.

One file holds the subscribers, their status history and the delivery ledger. The schema's
version is SQLite's `user_version`; each entry of MIGRATIONS moves it up by one, in a
transaction, so an old database is brought up to date the first time a newer version opens it.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from newsletter.errors import NewsletterError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        first_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'pending', 'unsubscribed', 'bounced', 'complained')),
        status_reason TEXT NOT NULL DEFAULT '',
        status_changed_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX subscribers_status ON subscribers (status, id);
    CREATE TABLE subscriber_tags (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        tag TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (subscriber_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag, subscriber_id);
    CREATE TABLE status_changes (
        id INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    CREATE INDEX status_changes_subscriber ON status_changes (subscriber_id, id);
    CREATE TABLE deliveries (
        issue TEXT NOT NULL,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        status TEXT NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        server TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (issue, subscriber_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_status ON deliveries (issue, status, subscriber_id);
    """,
    # The ledger as a queue with claims (see ledger.py), and how each issue's send was started.
    """
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE deliveries ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    CREATE TABLE sends (
        issue TEXT PRIMARY KEY,
        transport TEXT NOT NULL,
        relays TEXT NOT NULL DEFAULT '',
        tag TEXT NOT NULL DEFAULT '',
        rate TEXT NOT NULL DEFAULT '',
        connections INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
)


class DatabaseError(NewsletterError):
    """The database file cannot be opened or is not one of ours."""


def failure(exc: sqlite3.Error, path: Path | str) -> DatabaseError:
    """One clear line for a database that cannot be used (full disk, read-only, locked...)."""
    text = str(exc)
    where = Path(path)
    if (
        "unable to open" in text
        and where.parent.is_dir()
        and not (
            os.access(where.parent, os.W_OK) and (not where.exists() or os.access(where, os.W_OK))
        )
    ):
        text = "readonly"
    if "full" in text:
        what = "the disk is full; free some space"
    elif "readonly" in text or "read-only" in text:
        what = "it is read-only; make the file and its folder writable"
    elif "locked" in text or "busy" in text:
        what = "another program keeps it locked; close that program"
    elif "disk I/O" in text:
        what = "the disk reported an I/O error; check the disk"
    else:
        return DatabaseError(f"{path}: the database failed ({text})")
    return DatabaseError(f"{path}: cannot write the database: {what}, then run again")


def now() -> str:
    """The current UTC time as stored in the database (ISO 8601, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version the database is at."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every migration the database has not had yet, each in its own transaction."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"the database is at schema version {version}, newer than this newsletter "
            f"knows ({len(MIGRATIONS)}); upgrade newsletter"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at `path`.

    WAL journal with synchronous=NORMAL: a commit survives the process being killed at any
    moment; autocommit mode, so each statement or explicit transaction is its own unit.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.OperationalError as exc:
        raise failure(exc, path) from None
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: cannot open the database: {exc}") from None
    return conn
