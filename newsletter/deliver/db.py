"""The project's database: an SQLite file (the default) or PostgreSQL, migrated on open.

One database holds the subscribers, their status history, the delivery ledger and the rest.
`connect` takes a path (SQLite) or a `postgresql://` URL (see postgres.py) and returns a
`Connection`: both kinds take the same SQL with `?` placeholders, give rows readable by name
or position, and offer `insert()` (the new row's id), `begin()` (a write transaction),
`durable()` (commits inside reach the disk before they return), `relaxed()` (commits inside
survive this process being killed, not necessarily a crash of the machine or server:
bookkeeping that can be redone) and `bulk()` (a large write). What differs between the two SQL
dialects is in `Dialect`, so no other module asks which database it talks to.

SQLite's schema version is its `user_version`; each entry of MIGRATIONS moves it up by one, in
a transaction, so an old database is brought up to date the first time a newer version opens
it. PostgreSQL has the same migrations, version for version, in postgres.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

from newsletter.errors import DatabaseError

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
    # Analytics: clicks per link (never per reader), open counts, and which issue a status
    # change came from (an unsubscribe link or a bounce names its issue).
    """
    CREATE TABLE clicks (
        id INTEGER PRIMARY KEY,
        issue TEXT NOT NULL,
        url TEXT NOT NULL,
        clicked_at TEXT NOT NULL,
        human INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX clicks_issue ON clicks (issue, clicked_at);
    CREATE TABLE opens (issue TEXT NOT NULL, opened_at TEXT NOT NULL);
    CREATE INDEX opens_issue ON opens (issue);
    ALTER TABLE status_changes ADD COLUMN issue TEXT NOT NULL DEFAULT '';
    CREATE INDEX status_changes_issue ON status_changes (issue, status);
    """,
    # The suppression list (keyed hashes of erased addresses that must stay out), its key,
    # and a log of erasures that names nobody.
    """
    CREATE TABLE suppression_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO suppression_meta (name, value)
        VALUES ('suppression_key', lower(hex(randomblob(32))));
    CREATE TABLE suppressions (
        hash TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        suppressed_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE erasures (
        id INTEGER PRIMARY KEY,
        erased_at TEXT NOT NULL,
        status TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    """,
    # What comes back: one row per inbound message or webhook event and recipient, with the
    # raw input, what was decided and why, and what was done (so it can be undone).
    """
    CREATE TABLE inbound_events (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        class TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        issue TEXT NOT NULL DEFAULT '',
        subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE CASCADE,
        matched_by TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        action TEXT NOT NULL,
        previous_status TEXT NOT NULL DEFAULT '',
        decision TEXT NOT NULL,
        raw BLOB,
        undone_at TEXT
    );
    CREATE INDEX inbound_events_issue ON inbound_events (issue, kind, class);
    CREATE INDEX inbound_events_subscriber ON inbound_events (subscriber_id, id);
    """,
    # Links name subscribers by a random public id, never by address; preference changes are
    # recorded with their source; `settings` holds facts such as the signing key's fingerprint.
    """
    ALTER TABLE subscribers ADD COLUMN public_id TEXT;
    UPDATE subscribers SET public_id = lower(hex(randomblob(16)));
    CREATE UNIQUE INDEX subscribers_public_id ON subscribers (public_id);
    CREATE TRIGGER subscribers_public_id AFTER INSERT ON subscribers
        WHEN NEW.public_id IS NULL
    BEGIN
        UPDATE subscribers SET public_id = lower(hex(randomblob(16))) WHERE id = NEW.id;
    END;
    CREATE TABLE preference_changes (
        id INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        what TEXT NOT NULL,
        value TEXT NOT NULL,
        source TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    CREATE INDEX preference_changes_subscriber ON preference_changes (subscriber_id, id);
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    """
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        issue TEXT NOT NULL,
        issue_dir TEXT NOT NULL,
        due_at TEXT NOT NULL,
        timezone TEXT NOT NULL,
        tag TEXT,
        force INTEGER NOT NULL DEFAULT 0,
        skip_url_check INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'scheduled'
            CHECK (status IN ('scheduled', 'sending', 'sent', 'failed', 'missed', 'cancelled')),
        worker TEXT NOT NULL DEFAULT '',
        lease_until TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (status, due_at);
    CREATE TABLE send_overrides (
        id INTEGER PRIMARY KEY,
        issue TEXT NOT NULL,
        errors TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
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
    # A send's whole segment (tags to include and exclude, a catch-up's start, one subscriber
    # for a welcome) as JSON; `tag` stays for older readers.
    """
    ALTER TABLE sends ADD COLUMN segment TEXT NOT NULL DEFAULT '';
    UPDATE sends SET segment = json_object('tags', json_array(tag)) WHERE tag != '';
    """,
    # The web app's rate limits, shared by all its worker processes (see ratelimits.py): a
    # keyed hash of what is limited, the times of its recent events, when the row may go.
    """
    CREATE TABLE rate_limits (
        hash TEXT PRIMARY KEY,
        hits TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX rate_limits_expires ON rate_limits (expires_at);
    """,
    # Every insert gives a public id now: the fallback trigger only cost each insert time.
    """
    DROP TRIGGER IF EXISTS subscribers_public_id;
    """,
    # Each relay's sending budget, shared by every sending process (relay_budget.py).
    """
    CREATE TABLE relay_budget (relay TEXT PRIMARY KEY, next_slot REAL NOT NULL) WITHOUT ROWID;
    """,
)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between SQLite and PostgreSQL."""

    name: str
    #: A row's tags joined by U+001F (in a correlated subquery on `subscriber_tags`).
    tag_list: str
    #: The domain part of `email`.
    email_domain: str
    #: Appended to the SELECT that claims rows: lock them, and skip those another sender
    #: has locked (SQLite's write transaction already excludes every other writer).
    skip_locked: str
    #: The names of the schema's tables, sorted (the schema-version bookkeeping left out).
    tables: str
    #: The database's clock, in seconds since the epoch (the same value all through a statement).
    clock: str

    def later(self, column: str) -> str:
        """A condition: the stored time in `column` is after the time given as a parameter."""
        if self.name == "sqlite":
            return f"julianday({column}) > julianday(?)"
        return f"CAST({column} AS timestamptz) > CAST(? AS timestamptz)"


SQLITE = Dialect(
    name="sqlite",
    tag_list="group_concat(tag, char(31))",
    email_domain="lower(substr(email, instr(email, '@') + 1))",
    skip_locked="",
    tables="SELECT name FROM sqlite_master WHERE type = 'table'"
    " AND substr(name, 1, 7) != 'sqlite_' ORDER BY name",
    clock="((julianday('now') - 2440587.5) * 86400.0)",
)
POSTGRESQL = Dialect(
    name="postgresql",
    tag_list="string_agg(tag::text, chr(31))",
    email_domain="lower(split_part(email::text, '@', 2))",
    skip_locked=" FOR UPDATE OF d SKIP LOCKED",
    tables="SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    " AND tablename != 'newsletter_schema' ORDER BY tablename",
    clock="extract(epoch FROM statement_timestamp())::float8",
)


class Cursor(Protocol):
    """What a statement gives back."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection to the project's database, SQLite or PostgreSQL."""

    dialect: Dialect
    #: What to call the database in messages: its path, or its URL without a password.
    where: str
    #: The schema's migrations for this kind of database, oldest first.
    migrations: tuple[str, ...]

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def insert(self, sql: str, parameters: Sequence[Any], /) -> int | None: ...

    @property
    def in_transaction(self) -> bool: ...

    def begin(self) -> None: ...

    def durable(self) -> AbstractContextManager[None]: ...

    def relaxed(self) -> AbstractContextManager[None]: ...

    def bulk(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...

    def schema_version(self) -> int: ...

    def migrate(self) -> None: ...


#: The page cache a bulk write may use, in KiB (SQLite allocates it only as pages are read).
BULK_CACHE_KIB = 32 * 1024


class SQLiteConnection(sqlite3.Connection):
    """sqlite3's connection with the methods every `Connection` has."""

    dialect = SQLITE
    where = "the database"
    migrations = MIGRATIONS

    def schema_version(self) -> int:
        """The schema version the database is at (SQLite's `user_version`)."""
        return int(self.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply every migration the database has not had yet, each in its own transaction. The
        version is read again once the write lock is held: another connection may have applied
        the migration meanwhile (and a migration that can run twice must not run again and set
        the version back)."""
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise newer_schema(version, len(MIGRATIONS))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self.begin()
            try:
                if self.schema_version() < number:
                    for statement in _statements(script):
                        self.execute(statement)
                    self.execute(f"PRAGMA user_version = {number}")
                self.execute("COMMIT")
            except BaseException:
                if self.in_transaction:
                    self.execute("ROLLBACK")
                raise

    def begin(self) -> None:
        """Open a write transaction (taking the write lock at once)."""
        self.execute("BEGIN IMMEDIATE")

    def insert(self, sql: str, parameters: Sequence[Any], /) -> int | None:
        """Run one INSERT of one row; the new row's `id`, or None if `ON CONFLICT ... DO
        NOTHING` kept it out (SQLite's lastrowid: RETURNING would double the insert's cost)."""
        cursor = self.execute(sql, parameters)
        return cursor.lastrowid if cursor.rowcount == 1 else None

    @contextlib.contextmanager
    def durable(self) -> Iterator[None]:
        """Commits inside are fsynced before they return (synchronous=FULL)."""
        self.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            self.execute("PRAGMA synchronous = NORMAL")

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        """Commits inside need not reach the disk at once: SQLite's normal mode already."""
        yield

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """A large write: a larger page cache for its duration."""
        default = self.execute("PRAGMA cache_size").fetchone()[0]
        self.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self.execute(f"PRAGMA cache_size = {int(default)}")


def newer_schema(version: int, latest: int) -> DatabaseError:
    """The error for a database migrated by a newer newsletter than this one."""
    return DatabaseError(
        f"the database is at schema version {version}, newer than this newsletter "
        f"knows ({latest}); upgrade newsletter"
    )


def missing_driver(exc: ImportError) -> DatabaseError:
    """The error for PostgreSQL asked of an installation without its driver."""
    return DatabaseError(
        f"a PostgreSQL database needs psycopg ({exc.name} is not installed): "
        "pip install 'newsletter[postgres]'"
    )


def is_postgres(location: Path | str) -> bool:
    """Whether `location` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def exists(location: Path | str) -> bool:
    """Whether the database may hold data already (a server database always may)."""
    return is_postgres(location) or Path(location).exists()


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


def stored_time(moment: dt.datetime) -> str:
    """An aware time as the database stores it: UTC, ISO 8601 to the second, `+00:00`."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def now() -> str:
    """The current UTC time as stored in the database."""
    return stored_time(dt.datetime.now(dt.UTC))


def schema_version(conn: Connection) -> int:
    """The schema version the database is at."""
    return conn.schema_version()


def latest_version(conn: Connection) -> int:
    """The schema version this newsletter migrates the database to."""
    return len(conn.migrations)


def migrate(conn: Connection) -> None:
    """Bring the database's schema up to date."""
    conn.migrate()


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one at a time (a trigger's body included)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def _create_private(path: Path) -> None:
    """Create an empty file with mode 0600 if there is none: subscribers are personal data.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(location: Path | str, lock_wait: float = 30.0, *, migrated: bool = True) -> Connection:
    """Open the database at `location` (a path, or a `postgresql://` URL) and migrate it
    forward (unless `migrated` is False); a statement waits up to `lock_wait` seconds for
    another connection's locks."""
    if is_postgres(location):
        try:
            from newsletter.deliver import postgres
        except ImportError as exc:
            raise missing_driver(exc) from None
        return postgres.connect(str(location), lock_wait, migrated=migrated)
    return connect_sqlite(Path(location), lock_wait, migrated=migrated)


def _use_wal(conn: sqlite3.Connection, lock_wait: float) -> None:
    """Put the file in WAL mode (a no-op once it is). Switching from a rollback journal needs
    the file to itself; when connections opening it together each hold a read lock, SQLite
    answers "database is locked" at once instead of waiting (to avoid a deadlock), so the
    switch is tried again, with short pauses, until `lock_wait` runs out."""
    deadline = time.monotonic() + lock_wait
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def connect_sqlite(
    path: Path, lock_wait: float = 30.0, *, migrated: bool = True
) -> SQLiteConnection:
    """Open (creating if needed, readable by its owner only) and migrate the database at
    `path`; a statement waits up to `lock_wait` seconds (retrying) for another connection's
    write lock.

    WAL journal with synchronous=NORMAL: a commit survives the process being killed at any
    moment; autocommit mode, so each statement or explicit transaction is its own unit.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        conn = sqlite3.connect(
            path,
            timeout=lock_wait,
            isolation_level=None,
            check_same_thread=False,
            factory=SQLiteConnection,
        )
        conn.where = str(path)
        conn.row_factory = sqlite3.Row
        _use_wal(conn, lock_wait)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrated:
            conn.migrate()
    except sqlite3.OperationalError as exc:
        raise failure(exc, path) from None
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: cannot open the database: {exc}") from None
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the database: {exc.strerror}") from None
    return conn
