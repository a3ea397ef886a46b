"""`newsletter subscribers ...`: import, add, remove, unsubscribe, list and export subscribers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.deliver.status import Status
from newsletter.errors import Problem

if TYPE_CHECKING:  # the store loads when a command runs, for a fast start-up
    from newsletter.deliver.subscribers import SubscriberStore

subscribers_app = typer.Typer(
    help="Manage the subscriber list: import a CSV, add, remove, unsubscribe, list, export.",
    no_args_is_help=True,
)

StatusOption = Annotated[
    Status | None, typer.Option("--status", "-s", help="Only subscribers with this status.")
]
TagOption = Annotated[
    str | None, typer.Option("--tag", "-t", help="Only subscribers with this tag.")
]
EmailArgument = Annotated[str, typer.Argument(help="The subscriber's email address.")]


def _store(config: Path | None) -> SubscriberStore:
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore

    settings = load_config(config)
    return SubscriberStore.open(settings.path(settings.database))


@subscribers_app.command("import")
@reports_errors
def import_(
    file: Annotated[Path, typer.Argument(help="A CSV file with an email column.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Add the people in a CSV file, update the ones already here; never revive opt-outs.

    Columns: email (required), first_name, last_name, tags (separated by ',' or '|'), status;
    any other column is kept as an attribute. Bad rows are reported with their line and
    skipped; the rest is imported in one transaction.
    """
    from newsletter.deliver.csvfiles import csv_records, import_rows_from

    problems: list[Problem] = []  # the file's bad rows, found while the good ones stream in
    rows = import_rows_from(csv_records(file, problems), file, problems)
    with _store(config) as store:
        report = store.import_rows(rows, source=f"import:{file.name}")
    skipped = report.skipped + len(problems)  # each bad row in the file is one problem
    problems = sorted(
        [*problems, *(replace(p, path=file) for p in report.problems)],
        key=lambda problem: problem.line or 0,
    )
    if as_json:
        console.print_json(
            {
                "imported": report.imported,
                "updated": report.updated,
                "skipped": skipped,
                "problems": [{"line": p.line, "message": p.message} for p in problems],
            }
        )
        return
    for problem in problems:
        console.warning(escape(str(problem)))
    console.out.print(f"Imported {report.imported}, updated {report.updated}, skipped {skipped}.")


@subscribers_app.command()
@reports_errors
def add(
    email: EmailArgument,
    first_name: Annotated[str, typer.Option(help="First name.")] = "",
    last_name: Annotated[str, typer.Option(help="Last name.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A tag (repeat for several).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a subscriber (active), or update one; people who opted out are refused."""
    with _store(config) as store:
        known = store.get(email) is not None
        subscriber = store.add(email, first_name, last_name, tag or ())
    console.out.print(f"{'Updated' if known else 'Added'} {escape(subscriber.email)}.")


@subscribers_app.command()
@reports_errors
def remove(email: EmailArgument, config: ConfigOption = None) -> None:
    """Erase a subscriber and everything recorded about them (their history, deliveries)."""
    with _store(config) as store:
        if not store.remove(email):
            from newsletter.deliver.subscribers import SubscriberError

            raise SubscriberError(Problem(f"{email} is not on the list; check the address"))
    console.out.print(f"Removed {escape(email)} and everything recorded about them.")


@subscribers_app.command()
@reports_errors
def unsubscribe(
    email: EmailArgument,
    reason: Annotated[str, typer.Option(help="Why, kept in their history.")] = "",
    config: ConfigOption = None,
) -> None:
    """Stop sending to a subscriber; they stay on file so nothing re-adds them."""
    with _store(config) as store:
        subscriber = store.unsubscribe(email, reason, source="cli")
    since = subscriber.status_changed_at[:10]
    console.out.print(f"{escape(subscriber.email)} is unsubscribed (since {since}).")


@subscribers_app.command("list")
@reports_errors
def list_(
    status: StatusOption = None,
    tag: TagOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List subscribers as a table (email, name, status, tags, since) or as JSON."""
    with _store(config) as store:
        subscribers = store.iter(status, tag)
        if as_json:
            first = True
            for subscriber in subscribers:
                sys.stdout.write(
                    ("[\n  " if first else ",\n  ")
                    + json.dumps(asdict(subscriber), ensure_ascii=False)
                )
                first = False
            sys.stdout.write("[]\n" if first else "\n]\n")
            return
        table = Table("Email", "Name", "Status", "Tags", "Since")
        for subscriber in subscribers:
            table.add_row(
                escape(subscriber.email),
                escape(subscriber.name),
                subscriber.status.value,
                escape(", ".join(subscriber.tags)),
                subscriber.status_changed_at[:10],
            )
    if table.row_count:
        console.out.print(table)
    else:
        console.out.print("No subscribers match.")


@subscribers_app.command()
@reports_errors
def export(
    status: StatusOption = None,
    tag: TagOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The CSV file to write (default: stdout).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write subscribers as CSV (import reads it back): email, names, tags, status, attributes."""
    from newsletter.deliver.csvfiles import write_subscriber_csv
    from newsletter.deliver.subscribers import SubscriberError

    with _store(config) as store:
        if out is None:
            write_subscriber_csv(store.iter(status, tag), sys.stdout)
            return
        try:
            with out.open("w", encoding="utf-8", newline="") as file:
                written = write_subscriber_csv(store.iter(status, tag), file)
        except OSError as exc:
            raise SubscriberError(Problem(f"cannot write it: {exc.strerror}", path=out)) from None
    console.out.print(f"Exported {written} subscribers to {escape(str(out))}.")
