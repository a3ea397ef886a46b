"""`newsletter send`, `status` and `unsubscribe`: options in, library calls, results out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from newsletter.checks.gate import needs_url_check, send_gate, url_gate
from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.cli.confirm import confirm_send
from newsletter.cli.later import due_time, schedule_send, warn_unpublished
from newsletter.cli.overview import print_overview
from newsletter.compose.build import BuiltIssue, build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import Config, load_config
from newsletter.deliver.db import connect
from newsletter.deliver.history import overrides, record_override
from newsletter.deliver.journal import apply_journal
from newsletter.deliver.keycheck import check_signing_key
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.message import DkimKey, MessageFactory, Recipient
from newsletter.deliver.sender import Lane, Policy, SendReport, make_lanes, send_issue
from newsletter.deliver.subscribers import Status, SubscriberStore, normalize_email
from newsletter.deliver.tokens import key_source, signer_for, token_from
from newsletter.deliver.transports import DeliveryError
from newsletter.deliver.worker import utc_clock
from newsletter.errors import InputError, Problem
from newsletter.validation import parse_rate

IssueArgument = Annotated[Path, typer.Argument(help="The issue folder (holding issue.md).")]


def _store(config: Config) -> SubscriberStore:
    return SubscriberStore.open(config.path(config.database))


def _policy(config: Config) -> Policy:
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
    recipients = []
    for address in addresses:
        email = normalize_email(address)
        known = store.get(email)
        if known is None:
            recipients.append(Recipient(email))
        else:
            recipients.append(Recipient(email, known.first_name, known.last_name,
                                        public_id=known.public_id))  # fmt: skip
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
    count = size = 0
    for job in ledger.pending(tag, uncertain, unqueued=True):
        copy = factory.render(
            Recipient(job.email, job.first_name, job.last_name, job.subscriber_id, job.public_id)
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


def deliver(
    settings: Config,
    built: BuiltIssue,
    transport: str,
    *,
    tag: str | None = None,
    rate: float | None = None,
    connections: int | None = None,
    resend_uncertain: bool = False,
    on_start: Callable[[SendReport], None] = lambda report: None,
    on_progress: Callable[[SendReport], None] = lambda report: None,
) -> SendReport:
    """Send a built issue to every pending subscriber now (no questions asked)."""
    factory = MessageFactory(
        built, settings, signer_for(settings), dkim_key=DkimKey.from_config(settings)
    )
    ledger = Ledger(connect(settings.path(settings.database)), built.slug)
    lanes = make_lanes(settings, transport, built.slug, rate=rate, connections=connections)
    _open(lanes)
    try:
        return send_issue(
            factory, ledger, _store(settings), lanes, settings.sender.address,
            tag=tag, resend_uncertain=resend_uncertain, policy=_policy(settings),
            on_start=on_start, on_progress=on_progress,
        )  # fmt: skip
    finally:
        for lane in lanes:
            lane.transport.close()


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
    topic: Annotated[
        str | None, typer.Option(help="Send only to readers who chose this topic ([[topics]]).")
    ] = None,
    accept_new_key: Annotated[
        bool, typer.Option(help="The signing key was replaced on purpose: record the new one.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send despite check errors (recorded in the ledger).")
    ] = False,
    skip_url_check: Annotated[
        bool,
        typer.Option(
            "--skip-url-check", help="Do not check that published images and links answer."
        ),
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Send later, at this time: '2026-12-04 07:00' (newsletter worker)."
        ),
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone of --at (default: [schedule] timezone).")
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Send an issue to every active subscriber who has not had it yet."""
    asked = utc_clock()  # a time given with --at must be later than when the command ran
    settings = load_config(config, start=issue_dir)
    issue = load_issue(issue_dir)
    if at is not None and (dry_run or test):
        raise InputError(Problem("--at schedules a real send; leave out --dry-run and --test"))
    due = due_time(settings, at, tz) if at is not None else None
    transport = transport or settings.sending.transport
    if transport not in ("outbox", "smtp"):
        raise InputError(Problem(f"unknown transport '{transport}'; use outbox or smtp"))
    try:
        per_second = parse_rate(rate) if rate else None
    except ValueError as exc:
        raise InputError(Problem(str(exc), field="--rate")) from None
    if topic is not None:
        if tag is not None:
            raise InputError(Problem("give --tag or --topic, not both"))
        tag = settings.topic(topic).tag
    built = build_issue(issue, settings)
    for warning in built.warnings:
        console.warning(escape(warning))
    if test:
        if issue.status == "draft":
            built = replace(built, subject=f"[DRAFT] {built.subject}")
        factory = MessageFactory(
            built, settings, signer_for(settings), test=True, dkim_key=DkimKey.from_config(settings)
        )
        lanes = make_lanes(
            settings, transport, issue.slug, rate=per_second, connections=connections
        )
        _test_send(factory, lanes, _store(settings), test, settings.sender.address, json)
        return
    signer = signer_for(settings)
    with _store(settings) as store:
        check_signing_key(store.conn, signer, key_source(settings), accept=accept_new_key)
        if not dry_run and due is None:
            apply_journal(settings, signer, store)
    overridden = send_gate(issue_dir, settings, force=force)
    for error in overridden:
        console.warning(f"check error overridden by --force: {escape(error)}")
    if due is not None:
        if needs_url_check(settings, transport) and not skip_url_check:
            warn_unpublished(settings, built)
        schedule_send(
            settings, issue, due, asked, tag=tag, force=force, skip=skip_url_check, as_json=json
        )
        return
    if dry_run:
        factory = MessageFactory(
            built, settings, signer_for(settings), dkim_key=DkimKey.from_config(settings)
        )
        ledger = Ledger(connect(settings.path(settings.database)), issue.slug)
        _dry_run(factory, ledger, tag, resend_uncertain, transport, json)
        return
    if needs_url_check(settings, transport) and not skip_url_check:
        url_gate(built, settings)
    if not yes:
        confirm_send(settings, built, tag, resend_uncertain, transport)
    if overridden:
        record_override(connect(settings.path(settings.database)), issue.slug, overridden)
    progress = Progress(
        TextColumn("Sending"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn(),
        console=console.err, disable=json or not console.err.is_terminal,
    )  # fmt: skip
    task = progress.add_task("send", total=None)
    with progress:
        report = deliver(
            settings, built, transport, tag=tag, rate=per_second, connections=connections,
            resend_uncertain=resend_uncertain,
            on_start=lambda r: progress.update(task, total=r.pending),
            on_progress=lambda r: progress.update(task, completed=r.done),
        )  # fmt: skip
    if json:
        console.print_json(_summary(report))
    else:
        _print_summary(report, issue_dir)
    if report.interrupted:
        raise typer.Exit(130)
    if report.paused:
        raise typer.Exit(1)


@reports_errors
def status(
    issue_dir: Annotated[
        Path | None, typer.Argument(help="An issue folder (default: list every issue).")
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Every issue's state; with an issue, its delivery ledger: counts and problems."""
    if issue_dir is None:
        print_overview(load_config(config), json)
        return
    settings = load_config(config, start=issue_dir)
    slug = issue_dir.resolve().name if issue_dir.is_dir() else issue_dir.resolve().parent.name
    ledger = Ledger(connect(settings.path(settings.database)), slug)
    counts, problems = ledger.counts(), ledger.problems()
    forced = overrides(ledger.conn, slug)
    if json:
        console.print_json(
            {"issue": slug, "counts": counts, "problems": problems, "forced_past": forced}
        )
        return
    console.out.print(f"{slug}: " + ", ".join(f"{status} {n}" for status, n in counts.items()))
    for errors in forced:
        console.out.print(f"Sent with --force past: {escape('; '.join(errors))}")
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
    link: Annotated[
        str,
        typer.Argument(
            help="An unsubscribe link, its mailto: link, that mail's subject line, or the token."
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Apply an unsubscribe link (as the web endpoint would)."""
    settings = load_config(config)
    owner = signer_for(settings).read_subscriber_token(token_from(link))
    store = _store(settings)
    subscriber = owner.find(store)
    if subscriber is None:
        raise InputError(Problem("the link's subscriber is not on the list (any more)"))
    store.set_status(
        subscriber.id,
        Status.UNSUBSCRIBED,
        f"unsubscribe link in {owner.context}",
        source="link",
        issue=owner.context,
    )
    where = escape(owner.context)
    console.out.print(f"Unsubscribed {escape(subscriber.email)} (link from {where}).")
