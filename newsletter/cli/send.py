"""`newsletter send`, `status` and `unsubscribe`: options in, library calls, results out."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.cli.confirm import confirm_send
from newsletter.cli.later import due_time, schedule_send, warn_unpublished
from newsletter.cli.overview import print_overview
from newsletter.errors import InputError, Problem

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.deliver.campaign import Campaign, DryRunReport, TestSendReport
    from newsletter.deliver.sender import SendReport

IssueArgument = Annotated[Path, typer.Argument(help="The issue folder (holding issue.md).")]


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM while the send runs (a second one hurries it)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _resume_command(issue_dir: Path, campaign: Campaign, config: Path | None) -> str:
    """The exact command that continues this send as it was started."""
    settings = campaign.settings
    words = ["newsletter", "send", str(issue_dir), "--transport", settings.transport]
    words += settings.segment.options()
    if settings.rate:
        words += ["--rate", settings.rate]
    if settings.connections:
        words += ["--connections", str(settings.connections)]
    if config is not None:
        words += ["--config", str(config)]
    return shlex.join([*words, "--yes"])


def _summary(report: SendReport, resume: str) -> dict[str, object]:
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
        "shared_with": len(report.shared_with),
        "resume": resume if report.interrupted or report.paused or report.deferred else None,
    }


def _print_summary(report: SendReport, resume: str) -> None:
    rate = report.done / report.seconds if report.seconds else 0.0
    console.out.print(
        f"Sent {report.sent}, deferred {report.deferred}, failed {report.failed} "
        f"({report.bounced} bounced); skipped {report.skipped_sent} already sent and "
        f"{report.skipped_inactive} not active [{report.seconds:.1f} s, {rate:.0f}/s]"
    )
    if report.uncertain:
        console.warning(
            f"{report.uncertain} copies are uncertain: the process was killed or the connection "
            "lost after the message was handed over and before the server replied; the server "
            "may or may not have them, so they were not resent (--resend-uncertain)"
        )
    for warning in report.warnings:
        console.warning(escape(warning))
    if report.interrupted:
        console.err.print(f"Stopped. To resume, run: {escape(resume)}")
    elif report.paused:
        console.error(f"paused: {escape(report.paused)}")
        console.err.print(f"To resume, run: {escape(resume)}")
    elif report.deferred:
        console.err.print(
            f"{report.deferred} deferred: run send again later to retry them: {escape(resume)}"
        )


def _print_test(report: TestSendReport, as_json: bool) -> None:
    results = [{"to": r.to, "ok": r.ok, "reply": r.reply} for r in report.results]
    if as_json:
        console.print_json({"test": True, "results": results})
        return
    for result in report.results:
        mark = "[green]sent[/]" if result.ok else "[red]refused[/]"
        console.out.print(f"[TEST] {escape(result.to)}: {mark} ({escape(result.reply)})")


def _print_dry_run(report: DryRunReport, as_json: bool) -> None:
    if as_json:
        console.print_json({"dry_run": True, "would_send": report.would_send,
                            "bytes": report.bytes, "transport": report.transport,
                            "skipped_already_sent": report.skipped_sent,
                            "skipped_not_active": report.skipped_inactive})  # fmt: skip
        return
    console.out.print(
        f"Dry run: would send {report.would_send} messages ({report.bytes / 1e6:.1f} MB) "
        f"through {report.transport}; {report.skipped_sent} already sent, "
        f"{report.skipped_inactive} not active. Nothing was sent or recorded."
    )


def _on_start(report: SendReport, progress: Progress, task: int) -> None:
    progress.update(task, total=report.pending)  # type: ignore[arg-type]
    if report.shared_with:
        console.err.print(
            f"Another send of {report.issue} is running ({len(report.shared_with)} "
            "process(es)); this one joins it and shares the work."
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
        str | None,
        typer.Option(help="outbox or smtp (default: as the send was started, else [sending])."),
    ] = None,
    test: Annotated[
        list[str] | None,
        typer.Option("--test", help="Send only to this address, marked [TEST]; repeatable."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(help="Send only to subscribers with this tag; repeat for any of several."),
    ] = None,
    exclude_tag: Annotated[
        list[str] | None,
        typer.Option(help="Leave out subscribers with this tag; repeatable."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Send only to readers who chose this topic ([[topics]]).")
    ] = None,
    new_since_sent: Annotated[
        bool,
        typer.Option(
            "--new-since-sent",
            help="Catch up: send an issue already sent to those who became active after it "
            "went out (in the segment given, else in the one it was sent to).",
        ),
    ] = False,
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
        typer.Option(help="Also resend copies whose server reply was lost."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Send despite check errors (recorded), or send the rest of a started send "
            "another way (transport, tag)."
        ),
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
    accept_new_key: Annotated[
        bool, typer.Option(help="The signing key was replaced on purpose: record the new one.")
    ] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Send an issue to every active subscriber who has not had it yet."""
    from newsletter.checks.gate import needs_url_check, send_gate, url_gate
    from newsletter.compose.issues import load_issue
    from newsletter.config import load_config
    from newsletter.deliver.campaign import Campaign, SendOptions
    from newsletter.deliver.history import record_override
    from newsletter.deliver.worker import utc_clock

    asked = utc_clock()  # a time given with --at must be later than when the command ran
    settings = load_config(config, start=issue_dir)
    if at is not None and (dry_run or test):
        raise InputError(
            Problem("--at schedules a real send; leave out --dry-run and --test", code="bad-option")
        )
    due = due_time(settings, at, tz) if at is not None else None
    from newsletter.deliver.segments import Segment

    if at is not None and new_since_sent:
        raise InputError(Problem("--new-since-sent sends now; leave out --at", code="bad-option"))
    tags = [*(tag or ()), *([settings.topic(topic).tag] if topic is not None else [])]
    segment = Segment(tuple(tags), tuple(exclude_tag or ())) if tags or exclude_tag else None
    issue = load_issue(issue_dir)
    overridden = [] if test else send_gate(issue_dir, settings, force=force)
    for error in overridden:
        console.warning(f"check error overridden by --force: {escape(error)}")
    options = SendOptions(
        transport, segment, rate, connections, resend_uncertain, force or bool(test),
        accept_new_key, new_since_sent,
    )  # fmt: skip
    with Campaign(settings, issue, options) as campaign:
        for warning in campaign.warnings:
            console.warning(escape(warning))
        if test:
            _print_test(campaign.test_send(test), json)
            return
        check_urls = needs_url_check(settings, campaign.transport) and not skip_url_check
        if due is not None:
            if check_urls:
                warn_unpublished(settings, campaign.built)
            stored = segment.encode() if segment is not None else None
            schedule_send(settings, issue, due, asked, tag=stored, force=force,
                          skip=skip_url_check, as_json=json)  # fmt: skip
            return
        if dry_run:
            _print_dry_run(campaign.dry_run(), json)
            return
        if check_urls:
            url_gate(campaign.built, settings)
        if not yes:
            confirm_send(settings, campaign.built, campaign.segment, resend_uncertain,
                         campaign.transport)  # fmt: skip
        if overridden:
            record_override(campaign.ledger.conn, issue.slug, overridden)
        progress = Progress(
            TextColumn("Sending"), BarColumn(), MofNCompleteColumn(), _Rate(),
            TimeRemainingColumn(), console=console.err,
            disable=json or not console.err.is_terminal,
        )  # fmt: skip
        task = progress.add_task("send", total=None)
        with _stop_on_signals() as stop, progress:
            report = campaign.send(
                stop=stop,
                on_start=lambda r: _on_start(r, progress, task),
                on_progress=lambda r: progress.update(task, completed=r.done),
            )
        resume = _resume_command(issue_dir, campaign, config)
    if json:
        console.print_json(_summary(report, resume))
    else:
        _print_summary(report, resume)
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
    """Every issue's state; with an issue, its delivery ledger (counts and problems) and what
    came back about it (bounces, complaints, policy rejections, mail unsubscribes)."""
    from newsletter.config import load_config
    from newsletter.deliver.came_back import issue_feedback
    from newsletter.deliver.db import connect
    from newsletter.deliver.history import overrides
    from newsletter.deliver.ledger import Ledger

    if issue_dir is None:
        print_overview(load_config(config), json)
        return
    settings = load_config(config, start=issue_dir)
    slug = issue_dir.resolve().name if issue_dir.is_dir() else issue_dir.resolve().parent.name
    ledger = Ledger(connect(settings.database_location), slug)
    counts, problems, uncertain = ledger.counts(), ledger.problems(), ledger.uncertain()
    forced = overrides(ledger.conn, slug)
    came_back = issue_feedback(ledger.conn, slug)
    if json:
        console.print_json({"issue": slug, "counts": counts, "uncertain": uncertain,
                            "problems": problems, "forced_past": forced,
                            "came_back": came_back})  # fmt: skip
        return
    console.out.print(f"{slug}: " + ", ".join(f"{status} {n}" for status, n in counts.items()))
    console.out.print("Came back: " + ", ".join(
        f"{name.replace('_', ' ')} {n}" for name, n in came_back.items()))  # fmt: skip
    for errors in forced:
        console.out.print(f"Sent with --force past: {escape('; '.join(errors))}")
    if uncertain:
        console.out.print(
            f"{uncertain} uncertain (the process stopped or the connection was lost while the "
            "server was answering); they are not resent unless you pass --resend-uncertain."
        )
    if counts["sending"] > uncertain:
        console.out.print(f"{counts['sending'] - uncertain} being sent right now.")
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
    from newsletter.config import load_config
    from newsletter.deliver.subscribers import Status, SubscriberStore
    from newsletter.deliver.tokens import signer_for, token_from

    settings = load_config(config)
    owner = signer_for(settings).read_subscriber_token(token_from(link))
    store = SubscriberStore.open(settings.database_location)
    subscriber = owner.find(store)
    if subscriber is None:
        raise InputError(
            Problem("the link's subscriber is not on the list (any more)", code="not-found")
        )
    store.set_status(
        subscriber.id,
        Status.UNSUBSCRIBED,
        f"unsubscribe link in {owner.context}",
        source="link",
        issue=owner.context,
    )
    where = escape(owner.context)
    console.out.print(f"Unsubscribed {escape(subscriber.email)} (link from {where}).")
