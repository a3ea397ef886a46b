"""`newsletter inbound ...`: take in what comes back (bounces, complaints, mail unsubscribes)
from a mailbox, a file or a listener; review and undo what was decided."""

from __future__ import annotations

import json as jsonlib
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.markup import escape
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.errors import ConfigError, Problem

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.config import Config
    from newsletter.deliver.feedback import Applied, Feedback
    from newsletter.deliver.subscribers import SubscriberStore


class Stoppable(Protocol):
    """A started server."""

    def stop(self) -> None:
        """Stop it."""


inbound_app = typer.Typer(
    help="What comes back: bounces, complaints and unsubscribe mails, applied and reviewable.",
    no_args_is_help=True,
)


def _feedback(config: Config, store: SubscriberStore) -> Feedback:
    from newsletter.deliver.feedback import feedback_for
    from newsletter.deliver.tokens import signer_for

    return feedback_for(store, config, signer_for(config))


def _line(applied: Applied) -> str:
    who = f"reader {applied.subscriber_id}" if applied.subscriber_id else "nobody matched"
    cls = f" {applied.klass}" if applied.klass else ""
    how = applied.matched_by or "-"
    return f"{applied.kind}{cls} {applied.status}: {who} ({how}) → {applied.action}"


@inbound_app.command("import")
@reports_errors
def import_(
    path: Annotated[Path, typer.Argument(help="A Maildir, an mbox file or a folder of .eml.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and print; change and store nothing.")
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Take in the messages of a Maildir or mbox (nothing in it is changed or deleted)."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore
    from newsletter.inbound.classify import classify, decision_json
    from newsletter.inbound.sources import read_path

    settings = load_config(config)
    if dry_run and json:  # a JSON object per line, decided without the database
        for message in read_path(path):
            print(jsonlib.dumps(decision_json(message.key, classify(message.raw))), flush=True)
        return
    counts: dict[str, int] = {}
    with SubscriberStore.open(settings.database_location) as store:
        feedback = _feedback(settings, store)
        for message in read_path(path):
            for applied in feedback.ingest(message.raw, source=f"file:{path.name}",
                                           dry_run=dry_run):  # fmt: skip
                counts[applied.kind] = counts.get(applied.kind, 0) + 1
                if not json:
                    console.out.print(f"{escape(message.key)}: {escape(_line(applied))}")
    if json:
        console.print_json({"dry_run": dry_run, "counts": counts})
    else:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"
        console.out.print(f"{'Would take' if dry_run else 'Took'} in: {summary}.")


@inbound_app.command()
@reports_errors
def fetch(json: JsonOption = False, config: ConfigOption = None) -> None:
    """Take in the messages of the configured IMAP mailbox; handled ones are moved to a
    folder, unrecognised ones set aside, none deleted."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore
    from newsletter.inbound.sources import ImapMailbox, ImapSettings

    settings = load_config(config)
    inbound = settings.inbound
    if not inbound.imap_host or not inbound.imap_username:
        raise ConfigError(Problem("set inbound.imap_host and inbound.imap_username",
                                  field="inbound", code="missing-field"))  # fmt: skip
    password = os.environ.get(inbound.imap_password_env)
    if password is None:
        missing = f"${inbound.imap_password_env} is not set; export the IMAP password in it"
        raise ConfigError(Problem(missing, field="inbound.imap_password_env", code="missing-field"))
    imap = ImapSettings(inbound.imap_host, inbound.imap_username, password, inbound.imap_port,
                        inbound.imap_tls, inbound.imap_folder, inbound.imap_processed,
                        inbound.imap_unrecognised)  # fmt: skip
    counts: dict[str, int] = {}
    with SubscriberStore.open(settings.database_location) as store, ImapMailbox(imap) as box:
        feedback = _feedback(settings, store)
        for message in box.messages():
            applied = feedback.ingest(message.raw, source=f"imap:{inbound.imap_folder}")
            for item in applied:
                counts[item.kind] = counts.get(item.kind, 0) + 1
            if applied and applied[0].kind != "unclassified":
                box.processed(message.key)
            else:
                box.set_aside(message.key)
    if json:
        console.print_json({"counts": counts})
    else:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing new"
        console.out.print(f"Fetched: {summary}.")


@inbound_app.command()
@reports_errors
def listen(config: ConfigOption = None) -> None:
    """Receive the bounce domain's mail over LMTP on loopback until Ctrl-C or SIGTERM."""
    from newsletter.config import load_config

    settings = load_config(config)
    stop = threading.Event()
    server = start_listener(settings)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    console.err.print("Stopped.")


def start_listener(settings: Config) -> Stoppable:
    """The project's LMTP (or SMTP) listener, started; a port it cannot take is a ConfigError."""
    from newsletter.deliver.feedback import store_handler
    from newsletter.deliver.tokens import signer_for
    from newsletter.inbound.listener import listening

    inbound = settings.inbound
    protocol = "LMTP" if inbound.listen_lmtp else "SMTP"
    handle = store_handler(settings, signer_for(settings), source=protocol.lower())
    try:
        server = listening(handle, inbound.listen_host, inbound.listen_port, inbound.listen_lmtp)
    except (OSError, ValueError, RuntimeError) as exc:
        where = f"{inbound.listen_host}:{inbound.listen_port}"
        reason = f"cannot listen on {where} ({exc}); pick a free port on loopback"
        problem = Problem(reason, field="inbound.listen_port", code="port-in-use")
        raise ConfigError(problem) from None
    console.err.print(f"Listening for {protocol} on {inbound.listen_host}:{inbound.listen_port}")
    return server


@inbound_app.command("list")
@reports_errors
def list_(
    kind: Annotated[str | None, typer.Option(help="Only this kind (bounce, complaint...).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The latest inbound events: what each was, whom it matched, what was done."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore

    settings = load_config(config)
    with SubscriberStore.open(settings.database_location) as store:
        rows = [dict(row) for row in store.conn.execute(
            "SELECT id, received_at, source, kind, class, status, issue, subscriber_id,"
            " matched_by, action, undone_at FROM inbound_events"
            f" {'WHERE kind = ?' if kind else ''} ORDER BY id DESC LIMIT ?",
            (*([kind] if kind else []), limit),
        )]  # fmt: skip
    if json:
        console.print_json(rows)
        return
    table = Table("id", "when", "kind", "class", "status", "issue", "reader", "action")
    for row in rows:
        action = row["action"] + (" (undone)" if row["undone_at"] else "")
        table.add_row(str(row["id"]), row["received_at"], row["kind"], row["class"],
                      row["status"], escape(row["issue"]), str(row["subscriber_id"] or "-"),
                      escape(action))  # fmt: skip
    console.out.print(table)


@inbound_app.command()
@reports_errors
def show(event: Annotated[int, typer.Argument(help="The event's id.")], json: JsonOption = False,
         config: ConfigOption = None) -> None:  # fmt: skip
    """One event in full: the decision, why, and the raw message."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore

    settings = load_config(config)
    with SubscriberStore.open(settings.database_location) as store:
        row = store.conn.execute("SELECT * FROM inbound_events WHERE id = ?", (event,)).fetchone()
    if row is None:
        raise ConfigError(
            Problem(f"no inbound event {event}; see newsletter inbound list", code="not-found")
        )
    data = {key: row[key] for key in row.keys() if key != "raw"}  # noqa: SIM118 (a Row)
    data["decision"] = jsonlib.loads(row["decision"])
    raw = bytes(row["raw"] or b"").decode("utf-8", "replace")
    if json:
        console.print_json({**data, "raw": raw})
        return
    for key, value in data.items():
        console.out.print(f"{key}: {escape(str(value))}")
    console.out.print(escape(raw[:4000]))


@inbound_app.command()
@reports_errors
def undo(event: Annotated[int, typer.Argument(help="The event's id.")],
         config: ConfigOption = None) -> None:  # fmt: skip
    """Put the reader back as they were before this event changed them."""
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import SubscriberStore

    settings = load_config(config)
    with SubscriberStore.open(settings.database_location) as store:
        applied = _feedback(settings, store).undo(event)
    console.out.print(f"Event {event}: reader {applied.subscriber_id} {applied.action}.")
