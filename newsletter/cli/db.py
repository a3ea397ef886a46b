"""`newsletter db status|migrate|copy`: the database's schema and rows, migrating it, and
copying an SQLite database into PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.deliver.dbadmin import DatabaseStatus

db_app = typer.Typer(help="The database: its status, migrations, a copy into PostgreSQL.")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="PATH|URL",
        help="An SQLite file or a postgresql:// URL (default: the project's database).",
    ),
]


def _location(database: str | None, config: Path | None) -> Path | str:
    from newsletter.config import load_config
    from newsletter.deliver.dbadmin import location

    if database is not None:
        return location(database, "--database")
    return load_config(config).database_location


def _rows_table(rows: dict[str, int]) -> Table:
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(escape(name), f"{count:,}")
    return table


def _schema_line(found: DatabaseStatus) -> str:
    if found.newer:
        return (
            f"Schema version {found.version}, newer than this newsletter knows "
            f"({found.latest}): upgrade newsletter."
        )
    if found.pending:
        return (
            f"Schema version {found.version} of {found.latest}: {found.pending} migration(s) "
            "pending; run 'newsletter db migrate' (other commands also migrate on opening)."
        )
    return f"Schema version {found.version}, the latest this newsletter knows: up to date."


@db_app.command("status")
@reports_errors
def status(
    database: DatabaseOption = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Which database, its schema version, pending migrations, rows per table (never migrates)."""
    from newsletter.deliver.dbadmin import status as database_status

    found = database_status(_location(database, config))
    if json:
        console.print_json(
            {
                "database": found.where,
                "kind": found.kind,
                "exists": found.exists,
                "version": found.version,
                "latest": found.latest,
                "pending": found.pending,
                "newer": found.newer,
                "rows": found.rows,
            }
        )
        return
    kind = "PostgreSQL" if found.kind == "postgresql" else "SQLite"
    console.out.print(f"Database: {escape(found.where)} ({kind})")
    if not found.exists:
        console.out.print("It does not exist yet: the first command that needs it creates it.")
        return
    console.out.print(_schema_line(found))
    if found.rows:
        console.out.print(_rows_table(found.rows))


@db_app.command("migrate")
@reports_errors
def migrate(
    database: DatabaseOption = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Apply the migrations the database has not had yet."""
    from newsletter.deliver.dbadmin import migrate as migrate_database

    done = migrate_database(_location(database, config))
    if json:
        console.print_json({"database": done.where, "from": done.before, "to": done.after})
    elif done.before == done.after:
        console.out.print(
            f"{escape(done.where)} is at schema version {done.after} already: nothing to do."
        )
    else:
        console.out.print(
            f"Migrated {escape(done.where)} from schema version {done.before} to {done.after}."
        )


@db_app.command("copy")
@reports_errors
def copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The empty PostgreSQL database: postgresql://USER@HOST/NAME (the password "
            "comes from NEWSLETTER_DATABASE_PASSWORD).",
        ),
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", metavar="PATH", help="The SQLite file (default: the project's database)."
        ),
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite database, every table and id, into an empty PostgreSQL database."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from newsletter.deliver.db import missing_driver

    try:
        from newsletter.deliver.dbcopy import copy_database
    except ImportError as exc:
        raise missing_driver(exc) from None

    progress = Progress(
        TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
        console=console.err, disable=json or not console.err.is_terminal,
    )  # fmt: skip
    tasks: dict[str, TaskID] = {}

    def show(table: str, done: int, total: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=total)
        progress.update(tasks[table], completed=done)

    with progress:
        report = copy_database(_source(source, config), to, show)
    if json:
        console.print_json(
            {
                "source": report.source,
                "target": report.target,
                "version": report.version,
                "rows": report.rows,
            }
        )
        return
    console.out.print(_rows_table(report.rows))
    console.out.print(
        f"Copied {sum(report.rows.values()):,} rows in {len(report.rows)} tables from "
        f"{escape(report.source)} to {escape(report.target)} (schema version "
        f"{report.version}); the counts match."
    )
    console.out.print(
        f'Next: set database = "{escape(report.target)}" in newsletter.toml, then run '
        "'newsletter db status'."
    )


def _source(source: Path | None, config: Path | None) -> Path:
    """The SQLite file to copy: --from, else the project's database (which must be SQLite)."""
    from newsletter.config import load_config
    from newsletter.errors import InputError, Problem

    if source is not None:
        return source
    found = load_config(config).database_location
    if isinstance(found, str):
        raise InputError(
            Problem(
                "the project's database is PostgreSQL already; name the SQLite file to copy "
                "with --from",
                field="database",
                code="bad-option",
            )
        )
    return found
