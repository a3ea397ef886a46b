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
from newsletter.errors import InputError, Problem, SubscriberError

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.config import Config
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
    return SubscriberStore.open(settings.database_location)


@subscribers_app.command("import")
@reports_errors
def import_(
    file: Annotated[Path, typer.Argument(help="A CSV file with an email column.")],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="The export's format: mailchimp, substack, buttondown, listmonk or generic "
            "(default: recognised from the header).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what the import would do; change nothing.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Add the people in a CSV file, update the ones already here; never revive opt-outs.

    Reads the exports of Mailchimp (subscribed, unsubscribed and cleaned files, in any
    order), Substack, Buttondown and listmonk, recognised by their header, and our own CSV:
    email (required), first_name, last_name, tags (separated by ',' or '|'), status; any
    other column is kept as an attribute. Whoever unsubscribed or bounced there arrives
    unsubscribed or bounced here. Bad rows are reported with their line and skipped; the
    rest is imported in one transaction.
    """
    from newsletter.deliver.csvfiles import open_subscriber_csv
    from newsletter.deliver.services import FORMATS

    if format is not None and format not in FORMATS:
        known = ", ".join(FORMATS)
        raise InputError(
            Problem(
                f"unknown format '{format}'; use one of {known}",
                field="--format",
                code="bad-option",
            )
        )
    problems: list[Problem] = []  # the file's bad rows, found while the good ones stream in
    rows, kind = open_subscriber_csv(file, format, problems)
    with _store(config) as store:
        report = store.import_rows(rows, source=f"import:{file.name}", dry_run=dry_run)
    skipped = report.skipped + len(problems)  # each bad row in the file is one problem
    problems = sorted(
        [*problems, *(replace(p, path=file) for p in report.problems)],
        key=lambda problem: problem.line or 0,
    )
    if as_json:
        console.print_json(
            {
                "format": kind,
                "dry_run": dry_run,
                "imported": report.imported,
                "updated": report.updated,
                "skipped": skipped,
                "statuses": dict(sorted(report.statuses.items())),
                "problems": [{"line": p.line, "message": p.message} for p in problems],
            }
        )
        return
    for problem in problems:
        console.warning(escape(str(problem)))
    verb = "Would import" if dry_run else "Imported"
    console.out.print(f"{verb} {report.imported}, updated {report.updated}, skipped {skipped}.")
    if kind != "generic":
        console.out.print(f"Read as a {kind} export.")
    if report.statuses:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.statuses.items()))
        console.out.print(f"By status: {counts}")
    if dry_run:
        console.out.print("Dry run: nothing was changed.")


@subscribers_app.command()
@reports_errors
def add(
    email: EmailArgument,
    first_name: Annotated[str, typer.Option(help="First name.")] = "",
    last_name: Annotated[str, typer.Option(help="Last name.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A tag (repeat for several).")
    ] = None,
    welcome: Annotated[
        bool,
        typer.Option(
            "--welcome", help="Send them the welcome email ([welcome] issue) unless they had it."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a subscriber (active), or update one; people who opted out are refused."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore

    settings = load_config(config)
    if welcome and settings.welcome.issue is None:
        raise InputError(
            Problem(
                '--welcome needs a welcome email: add [welcome] issue = "issues/_welcome"',
                code="no-welcome",
            )
        )
    with SubscriberStore.open(settings.database_location) as store:
        known = store.get(email) is not None
        subscriber = store.add(email, first_name, last_name, tag or ())
    console.out.print(f"{'Updated' if known else 'Added'} {escape(subscriber.email)}.")
    if welcome:
        _welcome(settings, subscriber.id)


def _welcome(settings: Config, subscriber_id: int) -> None:
    """Send the welcome email to one subscriber now and say what happened."""
    from newsletter.deliver.welcome import send_welcome

    report = send_welcome(settings, subscriber_id)
    if report.sent:
        console.out.print("Welcome email sent.")
    elif report.skipped_sent:
        console.out.print("They already had the welcome email; not sent again.")
    else:
        console.warning(
            f"the welcome email was not sent ({report.deferred} deferred, {report.failed} "
            "failed); run the same command again to retry"
        )


@subscribers_app.command()
@reports_errors
def erase(
    email: EmailArgument,
    reason: Annotated[str, typer.Option(help="Why (logged, without the address).")] = "",
    config: ConfigOption = None,
) -> None:
    """Erase a person and everything held about them; a keyed hash keeps them off the list."""

    with _store(config) as store:
        if store.erase(email, source="cli", reason=reason) is None:
            raise SubscriberError(
                Problem(f"{email} is not on the list; check the address", code="not-found")
            )
    console.out.print(
        f"Erased {escape(email)} and everything recorded about them; no import can add the "
        "address back (a new sign-up with double opt-in can)."
    )


subscribers_app.command("remove", help="Same as erase.")(erase)


@subscribers_app.command()
@reports_errors
def show(email: EmailArgument, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Everything held about one person: fields, tags, attributes, history, deliveries."""

    with _store(config) as store:
        person = store.person(email)
    if person is None:
        raise SubscriberError(
            Problem(f"{email} is not on the list; check the address", code="not-found")
        )
    if as_json:
        console.print_json(person)
        return
    for key in ("email", "first_name", "last_name", "status", "status_reason", "created_at"):
        console.out.print(f"{key}: {escape(str(person[key]))}")
    console.out.print(f"tags: {escape(', '.join(person['tags'])) or '-'}")
    for name, value in sorted(person["attributes"].items()):
        console.out.print(f"attribute {escape(name)}: {escape(value)}")
    table = Table("when", "status", "source", "reason")
    for change in person["history"]:
        table.add_row(change["changed_at"], change["status"], escape(change["source"]),
                      escape(change["reason"]))  # fmt: skip
    console.out.print(table)
    deliveries = Table("issue", "delivery", "attempts", "when")
    for row in person["deliveries"]:
        deliveries.add_row(escape(row["issue"]), row["status"], str(row["attempts"]),
                           row["updated_at"])  # fmt: skip
    console.out.print(deliveries)


TagsOption = Annotated[list[str], typer.Option("--tag", "-t", help="A tag (repeat for several).")]


@subscribers_app.command()
@reports_errors
def tag(emails: Annotated[list[str], typer.Argument(help="Addresses.")], tags: TagsOption,
        config: ConfigOption = None) -> None:  # fmt: skip
    """Add tags to subscribers."""
    with _store(config) as store:
        for email in emails:
            store.tag(email, tags)
    console.out.print(f"Tagged {len(emails)} with {escape(', '.join(tags))}.")


@subscribers_app.command()
@reports_errors
def untag(emails: Annotated[list[str], typer.Argument(help="Addresses.")], tags: TagsOption,
          config: ConfigOption = None) -> None:  # fmt: skip
    """Take tags off subscribers."""
    with _store(config) as store:
        for email in emails:
            store.untag(email, tags)
    console.out.print(f"Untagged {len(emails)}: {escape(', '.join(tags))}.")


@subscribers_app.command()
@reports_errors
def tags(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Every tag with how many subscribers have it (active, and in all)."""
    with _store(config) as store:
        counts = store.tag_counts()
    if as_json:
        console.print_json(counts)
        return
    if not counts:
        console.out.print("No tags yet.")
        return
    table = Table("tag", "active", "all")
    for name, per_status in counts.items():
        table.add_row(escape(name), str(per_status.get("active", 0)), str(sum(per_status.values())))
    console.out.print(table)


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

    with _store(config) as store:
        if out is None:
            write_subscriber_csv(store.iter(status, tag), sys.stdout)
            return
        try:
            with out.open("w", encoding="utf-8", newline="") as file:
                written = write_subscriber_csv(store.iter(status, tag), file)
        except OSError as exc:
            raise SubscriberError(
                Problem(f"cannot write it: {exc.strerror}", path=out, code="unreadable-file")
            ) from None
    console.out.print(f"Exported {written} subscribers to {escape(str(out))}.")
