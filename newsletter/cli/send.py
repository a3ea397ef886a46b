"""`newsletter send`, `status` and `unsubscribe`: options in, library calls, results out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.errors import ConfigError, InputError, Problem

if TYPE_CHECKING:  # the commands import the library when they run, for a fast start-up
    from newsletter.config import Config
    from newsletter.deliver.ledger import Ledger
    from newsletter.deliver.message import DkimKey, MessageFactory
    from newsletter.deliver.sender import Lane, Policy, SendReport
    from newsletter.deliver.subscribers import SubscriberStore

IssueArgument = Annotated[Path, typer.Argument(help="The issue folder (holding issue.md).")]


def _dkim_key(config: Config) -> DkimKey | None:
    """The DKIM key, if configured; it must live outside the project (never committed)."""
    from newsletter.deliver.message import DkimKey

    if config.dkim is None:
        return None
    path = config.path(config.dkim.key_file).resolve()
    if path.is_relative_to(config.root.resolve()):
        raise ConfigError(
            Problem(
                f"{path} is inside the project; keep the DKIM private key outside it "
                "so it can never be committed",
                field="dkim.key_file",
            )
        )
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            Problem(f"cannot read {path}: {exc.strerror}", field="dkim.key_file")
        ) from None
    return DkimKey(config.dkim.selector, config.dkim.domain or config.sender_domain, key)


def _store(config: Config) -> SubscriberStore:
    from newsletter.deliver.subscribers import SubscriberStore

    return SubscriberStore.open(config.path(config.database))


def _policy(config: Config) -> Policy:
    from newsletter.deliver.sender import Policy

    sending = config.sending
    return Policy(
        sending.max_attempts,
        sending.retry_delay,
        sending.max_consecutive_failures,
        sending.batch_size,
    )


def _open(lanes: list[Lane]) -> None:
    opened: list[Lane] = []
    try:
        for lane in lanes:
            lane.transport.open()
            opened.append(lane)
    except BaseException:
        for lane in opened:
            lane.transport.close()
        raise


def _summary(report: SendReport) -> dict[str, object]:
    return {
        "issue": report.issue,
        "transport": report.transport,
        "pending": report.pending,
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "bounced": report.bounced,
        "uncertain": report.uncertain,
        "skipped_already_sent": report.skipped_sent,
        "skipped_not_active": report.skipped_inactive,
        "paused": report.paused,
        "interrupted": report.interrupted,
        "seconds": round(report.seconds, 3),
        "warnings": report.warnings,
    }


def _print_summary(report: SendReport, slug_dir: Path) -> None:
    rate = report.done / report.seconds if report.seconds else 0.0
    console.out.print(
        f"Sent {report.sent}, deferred {report.deferred}, failed {report.failed} "
        f"({report.bounced} bounced); skipped {report.skipped_sent} already sent and "
        f"{report.skipped_inactive} not active [{report.seconds:.1f} s, {rate:.0f}/s]"
    )
    if report.uncertain:
        console.warning(
            f"{report.uncertain} copies were being sent when an earlier run was killed; the "
            "server may or may not have them, so they were not resent (--resend-uncertain)"
        )
    for warning in report.warnings:
        console.warning(escape(warning))
    if report.interrupted:
        console.err.print(f"Stopped. To resume, run: newsletter send {slug_dir} --yes")
    elif report.paused:
        console.error(f"paused: {escape(report.paused)}")
    elif report.deferred:
        console.err.print(f"{report.deferred} deferred: run send again later to retry them.")


def _test_send(
    factory: MessageFactory, lanes: list[Lane], store: SubscriberStore, addresses: list[str],
    envelope_from: str, as_json: bool,
) -> None:  # fmt: skip
    from newsletter.deliver.message import Recipient
    from newsletter.deliver.subscribers import normalize_email
    from newsletter.deliver.transports import DeliveryError

    recipients = []
    for address in addresses:
        email = normalize_email(address)
        known = store.get(email)
        names = (known.first_name, known.last_name) if known else ("", "")
        recipients.append(Recipient(email, *names))
    lane = lanes[0]
    _open([lane])
    results = []
    try:
        for recipient in recipients:
            outgoing = factory.render(recipient)
            try:
                reply = lane.transport.send(
                    envelope_from, recipient.email, outgoing.data, lambda: None
                )
                results.append({"to": recipient.email, "ok": True, "reply": reply})
            except DeliveryError as exc:
                results.append({"to": recipient.email, "ok": False, "reply": str(exc)})
    finally:
        lane.transport.close()
    if as_json:
        console.print_json({"test": True, "results": results})
        return
    for result in results:
        mark = "[green]sent[/]" if result["ok"] else "[red]refused[/]"
        console.out.print(f"[TEST] {escape(result['to'])}: {mark} ({escape(result['reply'])})")


def _dry_run(factory: MessageFactory, ledger: Ledger, tag: str | None, uncertain: bool,
             transport: str, as_json: bool) -> None:  # fmt: skip
    from newsletter.deliver.message import Recipient

    count = size = 0
    for job in ledger.pending(tag, uncertain, unqueued=True):
        copy = factory.render(
            Recipient(job.email, job.first_name, job.last_name, job.subscriber_id)
        )
        count += 1
        size += len(copy.data)
    sent, inactive = ledger.skipped(tag)
    result = {"dry_run": True, "would_send": count, "bytes": size, "transport": transport,
              "skipped_already_sent": sent, "skipped_not_active": inactive}  # fmt: skip
    if as_json:
        console.print_json(result)
        return
    console.out.print(
        f"Dry run: would send {count} messages ({size / 1e6:.1f} MB) through {transport}; "
        f"{sent} already sent, {inactive} not active. Nothing was sent or recorded."
    )


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return f"{speed:.0f}/s" if speed else "…/s"


@reports_errors
def send(
    issue_dir: IssueArgument,
    transport: Annotated[
        str | None, typer.Option(help="outbox or smtp (default: [sending] transport).")
    ] = None,
    test: Annotated[
        list[str] | None,
        typer.Option("--test", help="Send only to this address, marked [TEST]; repeatable."),
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Send only to subscribers with this tag.")] = None,
    rate: Annotated[
        str | None, typer.Option(help="At most this rate, e.g. 10/s or 3600/h.")
    ] = None,
    connections: Annotated[
        int | None, typer.Option(min=1, max=64, help="Connections per SMTP server.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render every copy; send and record nothing.")
    ] = False,
    resend_uncertain: Annotated[
        bool,
        typer.Option(help="Also resend copies whose server reply was lost in a crash."),
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Send an issue to every active subscriber who has not had it yet."""
    from newsletter.compose.build import build_issue
    from newsletter.compose.issues import load_issue
    from newsletter.config import load_config
    from newsletter.deliver.db import connect
    from newsletter.deliver.ledger import Ledger
    from newsletter.deliver.message import MessageFactory
    from newsletter.deliver.sender import make_lanes, send_issue
    from newsletter.deliver.tokens import signer_for
    from newsletter.validation import parse_rate

    settings = load_config(config, start=issue_dir)
    issue = load_issue(issue_dir)
    transport = transport or settings.sending.transport
    if transport not in ("outbox", "smtp"):
        raise InputError(Problem(f"unknown transport '{transport}'; use outbox or smtp"))
    try:
        per_second = parse_rate(rate) if rate else None
    except ValueError as exc:
        raise InputError(Problem(str(exc), field="--rate")) from None
    built = build_issue(issue, settings)
    for warning in built.warnings:
        console.warning(escape(warning))
    signer = signer_for(settings)
    envelope_from = settings.sender.address
    lanes = make_lanes(settings, transport, issue.slug, rate=per_second, connections=connections)
    store = _store(settings)
    if test:
        factory = MessageFactory(built, settings, signer, test=True, dkim_key=_dkim_key(settings))
        _test_send(factory, lanes, store, test, envelope_from, json)
        return
    factory = MessageFactory(built, settings, signer, dkim_key=_dkim_key(settings))
    ledger = Ledger(connect(settings.path(settings.database)), issue.slug)
    if dry_run:
        _dry_run(factory, ledger, tag, resend_uncertain, transport, json)
        return
    count = ledger.count_pending(tag, resend_uncertain, unqueued=True)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(Problem("no terminal to confirm on; add --yes to send"))
        console.err.print(
            f"Subject: [bold]{escape(built.subject)}[/]\n"
            f"Recipients: {count}{f' (tag {tag})' if tag else ''}\nTransport: {transport}"
        )
        if not typer.confirm("Send now?"):
            raise typer.Exit(1)
    _open(lanes)
    progress = Progress(
        TextColumn("Sending"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn(),
        console=console.err, disable=json or not console.err.is_terminal,
    )  # fmt: skip
    task = progress.add_task("send", total=None)
    try:
        with progress:
            report = send_issue(
                factory, ledger, store, lanes, envelope_from,
                tag=tag, resend_uncertain=resend_uncertain, policy=_policy(settings),
                on_start=lambda r: progress.update(task, total=r.pending),
                on_progress=lambda r: progress.update(task, completed=r.done),
            )  # fmt: skip
    finally:
        for lane in lanes:
            lane.transport.close()
    if json:
        console.print_json(_summary(report))
    else:
        _print_summary(report, issue_dir)
    if report.interrupted:
        raise typer.Exit(130)
    if report.paused:
        raise typer.Exit(1)


@reports_errors
def status(issue_dir: IssueArgument, json: JsonOption = False, config: ConfigOption = None) -> None:
    """Show the delivery ledger of an issue: counts per status and the problems."""
    from newsletter.config import load_config
    from newsletter.deliver.db import connect
    from newsletter.deliver.ledger import Ledger

    settings = load_config(config, start=issue_dir)
    slug = issue_dir.resolve().name if issue_dir.is_dir() else issue_dir.resolve().parent.name
    ledger = Ledger(connect(settings.path(settings.database)), slug)
    counts, problems = ledger.counts(), ledger.problems()
    if json:
        console.print_json({"issue": slug, "counts": counts, "problems": problems})
        return
    console.out.print(f"{slug}: " + ", ".join(f"{status} {n}" for status, n in counts.items()))
    if counts["sending"]:
        console.out.print(
            f"{counts['sending']} uncertain (the process stopped while the server was "
            "answering); they are not resent unless you pass --resend-uncertain."
        )
    if problems:
        table = Table("address", "status", "attempts", "last reply", "when")
        for row in problems:
            table.add_row(row["email"], row["status"], str(row["attempts"]),
                          row["last_reply"], row["updated_at"])  # fmt: skip
        console.out.print(table)


@reports_errors
def unsubscribe(
    token_or_url: Annotated[str, typer.Argument(help="An unsubscribe link or its token.")],
    config: ConfigOption = None,
) -> None:
    """Apply an unsubscribe link (as the web endpoint would)."""
    from newsletter.config import load_config
    from newsletter.deliver.tokens import signer_for

    settings = load_config(config)
    token = token_or_url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    email, issue = signer_for(settings).verify("unsubscribe", token)
    store = _store(settings)
    if store.get(email) is None:
        raise InputError(Problem(f"{email} is not on the list (any more)"))
    store.unsubscribe(email, f"unsubscribe link in {issue}", source="link")
    console.out.print(f"Unsubscribed {escape(email)} (link from {escape(issue)}).")
