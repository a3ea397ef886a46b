"""Copying an SQLite database into an empty PostgreSQL database (`newsletter db copy`).

The source must be at this newsletter's schema version: the copy only reads it, and never
migrates it behind the user's back (migrating cannot be undone, and an older newsletter still
using the file would then refuse it), so an older file is refused with the command to run. The
target must hold no data; it is migrated to the same version, then filled in ONE transaction,
so a copy that fails leaves it as empty as it was.

The tables come from the source's own catalogue, so tables added by later migrations are copied
too; each goes after the tables its foreign keys reference, column by column by name. The rows
of each table stream from one read snapshot of the source into PostgreSQL's COPY, a batch at a
time, never all in memory. Before the commit, every table's rows are counted on both sides (a
difference is an error) and each identity sequence is moved past the largest id copied, so rows
added later get fresh ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from newsletter.deliver import db, postgres
from newsletter.deliver.dbadmin import location, quoted, row_counts
from newsletter.errors import DatabaseError, InputError, Problem

#: Rows read from the source at a time.
BATCH = 5000
#: How long a statement of the copy waits for another session's lock, in seconds.
LOCK_TIMEOUT = 30.0
#: What an SQLite file starts with (an empty file is an empty database too).
SQLITE_HEADER = b"SQLite format 3\x00"

#: Called as rows are copied: the table, the rows copied so far, the rows it holds.
OnProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CopyReport:
    """What was copied where: the rows of each table, in the order they were copied."""

    source: str
    target: str
    version: int
    rows: dict[str, int]


def target_url(value: str) -> str:
    """`value` checked as the copy's target: a `postgresql://` URL with a host, no password."""
    if not db.is_postgres(value):
        raise InputError(
            Problem(
                "the copy goes into PostgreSQL: give a URL like postgresql://USER@HOST/NAME",
                field="--to",
                code="bad-option",
            )
        )
    return str(location(value, "--to"))


def _open_source(path: Path) -> db.SQLiteConnection:
    """The SQLite database at `path`, which must exist and be at the latest schema version."""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        raise InputError(Problem("no such database file", path=path, code="not-found")) from None
    except OSError as exc:
        raise InputError(
            Problem(f"cannot read it: {exc.strerror}", path=path, code="unreadable-file")
        ) from None
    if header and header != SQLITE_HEADER:
        raise InputError(Problem("not an SQLite database", path=path, code="bad-option"))
    conn = db.connect_sqlite(path, migrated=False)
    version, latest = db.schema_version(conn), db.latest_version(conn)
    if version < latest:
        conn.close()
        raise InputError(
            Problem(
                f"the database is at schema version {version}, older than this newsletter's "
                f"{latest}: migrate it first with 'newsletter db migrate --database {path}' "
                "(this changes the file for good, so keep a copy of it), then copy again",
                path=path,
                code="schema-behind",
            )
        )
    if version > latest:
        conn.close()
        raise DatabaseError(
            f"{path}: the database is at schema version {version}, newer than this newsletter "
            f"knows ({latest}); upgrade newsletter"
        )
    return conn


@contextmanager
def _reading(conn: db.SQLiteConnection) -> Iterator[None]:
    """One read transaction: every count and row comes from the same snapshot."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def seeded_rows() -> dict[str, int]:
    """The rows the migrations themselves put in a new database, per table (the suppression
    key): a target holding only these is empty, and they give way to the source's."""
    conn = sqlite3.connect(":memory:", isolation_level=None, factory=db.SQLiteConnection)
    try:
        db.migrate(conn)
        return {name: rows for name, rows in row_counts(conn).items() if rows}
    finally:
        conn.close()


def _prepare_target(url: str, version: int, seeded: dict[str, int]) -> None:
    """Refuse a target that holds data, then migrate it to `version`."""
    conn = db.connect(url, migrated=False)
    try:
        held = {name: rows for name, rows in row_counts(conn).items() if rows > seeded.get(name, 0)}
        if held:
            listed = ", ".join(f"{rows} in {name}" for name, rows in sorted(held.items()))
            raise InputError(
                Problem(
                    f"the database already holds data ({listed} rows): the copy goes into an "
                    "empty database only; create a new one (createdb) and name it with --to",
                    field=conn.where,
                    code="database-not-empty",
                )
            )
        db.migrate(conn)
        reached = db.schema_version(conn)
        if reached != version:
            raise DatabaseError(
                f"{conn.where}: migrated to schema version {reached}, but the source is at "
                f"{version}; nothing was copied"
            )
    finally:
        conn.close()


def dependency_order(conn: db.SQLiteConnection, names: Sequence[str]) -> list[str]:
    """`names` ordered so that each table comes after the tables its foreign keys reference."""
    known = set(names)
    graph: dict[str, set[str]] = {}
    for name in sorted(names):
        references = conn.execute(f"PRAGMA foreign_key_list({quoted(name)})").fetchall()
        graph[name] = {row[2] for row in references if row[2] in known and row[2] != name}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        circle = " -> ".join(exc.args[1])
        raise DatabaseError(f"the tables' foreign keys go round in a circle: {circle}") from None


def _columns(conn: db.SQLiteConnection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({quoted(table)})")]


def _target_columns(target: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """The target's columns and their types, per table."""
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in target.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        found.setdefault(table, {})[column] = kind
    return found


def _matched_columns(
    where: str, source: db.SQLiteConnection, order: list[str], found: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Each source table's columns with their types in the target; every table and column must
    be there, or the copy would lose it."""
    missing: list[str] = []
    matched: dict[str, dict[str, str]] = {}
    for table in order:
        if table not in found:
            missing.append(f"table {table}")
            continue
        names = _columns(source, table)
        missing += [f"column {table}.{name}" for name in names if name not in found[table]]
        matched[table] = {name: found[table].get(name, "") for name in names}
    if missing:
        raise DatabaseError(
            f"{where}: has no {', '.join(missing)}, which the source has; the copy would lose "
            "them, so nothing was copied"
        )
    return matched


def _as_bytes(value: Any) -> Any:
    """A BLOB column's value for `bytea` (text stored in it as its UTF-8 bytes)."""
    return value.encode() if isinstance(value, str) else value


def _copy_table(
    source: db.SQLiteConnection,
    target: psycopg.Connection[Any],
    table: str,
    columns: dict[str, str],
    on_progress: OnProgress,
    total: int,
) -> int:
    """Stream one table's rows into the target's COPY; the number of rows copied."""
    names = list(columns)
    binary = [index for index, name in enumerate(names) if columns[name] == "bytea"]
    rows = source.execute(f"SELECT {', '.join(map(quoted, names))} FROM {quoted(table)}")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    copied = 0
    on_progress(table, copied, total)
    with target.cursor() as cursor, cursor.copy(statement) as copy:
        while batch := rows.fetchmany(BATCH):
            for row in batch:
                values = list(row)
                for index in binary:
                    values[index] = _as_bytes(values[index])
                copy.write_row(values)
            copied += len(batch)
            on_progress(table, copied, total)
    return copied


def _reset_sequences(target: psycopg.Connection[Any]) -> None:
    """Move every identity sequence past the largest id in its column."""
    for table, column in target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall():
        target.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), max({})) FROM {}").format(
                sql.Identifier(column), sql.Identifier(table)
            ),
            (quoted(table), column),
        )


def _check_counts(
    target: psycopg.Connection[Any], expected: dict[str, int], copied: dict[str, int]
) -> None:
    """Each table holds as many rows in the target as in the source's snapshot."""
    differ = []
    for table, rows in expected.items():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        found = target.execute(query).fetchone()
        held = int(found[0]) if found else 0
        if held != rows or copied[table] != rows:
            differ.append(f"{table}: {rows} in the source, {held} in the target")
    if differ:
        raise DatabaseError(
            "the row counts differ after the copy, so it was undone: " + "; ".join(differ)
        )


def _message(exc: psycopg.Error) -> str:
    """The server's first line only: its details may quote a row's values (addresses)."""
    primary = exc.diag.message_primary if isinstance(exc, psycopg.DatabaseError) else None
    text = primary or str(exc).strip().split("\n", 1)[0]
    return text or type(exc).__name__


@contextmanager
def _target_connection(url: str, where: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own (outside the pool) for the copy's one transaction."""
    try:
        conn = psycopg.connect(
            url, **postgres.session(LOCK_TIMEOUT, "newsletter db copy"), autocommit=True
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"{where}: cannot connect to the database: {_message(exc)}") from None
    try:
        yield conn
    finally:
        conn.close()


def _fill(
    source: db.SQLiteConnection,
    target: psycopg.Connection[Any],
    where: str,
    seeded: dict[str, int],
    on_progress: OnProgress,
) -> dict[str, int]:
    """Copy every table in one transaction on the target; the rows copied per table, in order."""
    expected = row_counts(source)
    order = dependency_order(source, list(expected))
    try:
        columns = _matched_columns(where, source, order, _target_columns(target))
        copied: dict[str, int] = {}
        with target.transaction():
            for table in seeded:
                target.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            for table in order:
                copied[table] = _copy_table(
                    source, target, table, columns[table], on_progress, expected[table]
                )
            _check_counts(target, expected, copied)
            _reset_sequences(target)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"{where}: the copy failed and was undone, the database is left empty: {_message(exc)}"
        ) from None
    return copied


def _ignore(table: str, done: int, total: int) -> None:
    """No progress to show."""


def copy_database(source: Path, url: str, on_progress: OnProgress = _ignore) -> CopyReport:
    """Copy every table of the SQLite database at `source` into the empty PostgreSQL database
    at `url`, ids and all; the rows per table, checked on both sides."""
    url = target_url(url)
    where = postgres.redacted(url)
    seeded = seeded_rows()
    conn = _open_source(source)
    try:
        version = db.schema_version(conn)
        _prepare_target(url, version, seeded)
        with _reading(conn), _target_connection(url, where) as target:
            rows = _fill(conn, target, where, seeded, on_progress)
    finally:
        conn.close()
    return CopyReport(str(source), where, version, rows)
