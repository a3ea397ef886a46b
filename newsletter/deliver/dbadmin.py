"""The database as the `db` commands see it: where it is, its schema version against the latest
this newsletter knows, its tables and their row counts; and migrating it when asked.

Looking never migrates (`status` opens the database with `migrated=False`), so an old database
can be inspected before a newer newsletter changes it. The tables are read from the database's
own catalogue, so a table added by a later migration is listed (and copied) without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsletter.config import check_database_url
from newsletter.deliver import db
from newsletter.errors import InputError, Problem


def quoted(name: str) -> str:
    """A table or column name quoted as an SQL identifier (the same in both dialects)."""
    return '"' + name.replace('"', '""') + '"'


def location(value: str, option: str) -> Path | str:
    """The database that `option` names: a `postgresql://` URL (with a host and no password)
    or an SQLite file's path."""
    if not db.is_postgres(value):
        return Path(value)
    try:
        return check_database_url(value)
    except ValueError as exc:
        raise InputError(Problem(str(exc), field=option, code="bad-option")) from None


def tables(conn: db.Connection) -> list[str]:
    """The names of the database's tables, sorted."""
    return [row[0] for row in conn.execute(conn.dialect.tables)]


def row_counts(conn: db.Connection) -> dict[str, int]:
    """How many rows each table holds."""
    return {
        name: int(conn.execute(f"SELECT count(*) FROM {quoted(name)}").fetchone()[0])
        for name in tables(conn)
    }


@dataclass(frozen=True)
class DatabaseStatus:
    """What `newsletter db status` shows."""

    #: The file's path or the URL without a password.
    where: str
    #: "sqlite" or "postgresql".
    kind: str
    #: False for an SQLite file that is not there yet (the first command creates it).
    exists: bool
    version: int
    latest: int
    #: Rows per table.
    rows: dict[str, int]

    @property
    def pending(self) -> int:
        """How many migrations this newsletter would apply."""
        return max(0, self.latest - self.version)

    @property
    def newer(self) -> bool:
        """Whether a newer newsletter has migrated the database past what this one knows."""
        return self.version > self.latest


def status(location: Path | str) -> DatabaseStatus:
    """The database's place, schema version and row counts; it is neither created nor migrated."""
    if not db.exists(location):
        return DatabaseStatus(str(location), "sqlite", False, 0, len(db.MIGRATIONS), {})
    conn = db.connect(location, migrated=False)
    try:
        return DatabaseStatus(
            where=conn.where,
            kind=conn.dialect.name,
            exists=True,
            version=db.schema_version(conn),
            latest=db.latest_version(conn),
            rows=row_counts(conn),
        )
    finally:
        conn.close()


@dataclass(frozen=True)
class Migrated:
    """What `newsletter db migrate` did: the schema version before and after."""

    where: str
    before: int
    after: int


def migrate(location: Path | str) -> Migrated:
    """Apply the migrations the database has not had yet (creating an SQLite file if needed)."""
    conn = db.connect(location, migrated=False)
    try:
        before = db.schema_version(conn)
        db.migrate(conn)
        return Migrated(conn.where, before, db.schema_version(conn))
    finally:
        conn.close()
