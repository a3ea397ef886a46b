"""`newsletter worker`: sends scheduled issues when they are due (also run by `serve`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.config import Config
    from newsletter.deliver.schedule import Scheduled
    from newsletter.deliver.sender import SendReport


def send_scheduled(config: Config, issue_dir: Path, row: Scheduled) -> SendReport:
    """The worker's send: the gate again (the issue may have changed since), then a real send.

    The one place the worker sends through; the gate stays in front of whatever sends.
    """
    from newsletter.checks.gate import needs_url_check, send_gate, url_gate
    from newsletter.deliver.campaign import Campaign, SendOptions
    from newsletter.deliver.history import record_override
    from newsletter.deliver.segments import Segment

    overridden = send_gate(issue_dir, config, force=row.force)
    segment = Segment.decode(row.tag) if row.tag else None
    with Campaign(config, issue_dir, SendOptions(segment=segment)) as campaign:
        if needs_url_check(config, campaign.transport) and not row.skip_url_check:
            url_gate(campaign.built, config)
        if overridden:
            record_override(campaign.ledger.conn, row.issue, overridden)
        return campaign.send()


def _print(line: str) -> None:
    console.err.print(escape(line))


def start_worker(config: Config, stop: threading.Event) -> threading.Thread:
    """Run the worker in a thread until `stop` is set (for `serve`)."""
    from newsletter.deliver.worker import Worker

    thread = threading.Thread(
        target=Worker(config, send_scheduled, report=_print).run,
        args=(stop,),
        name="newsletter-worker",
        daemon=True,
    )
    thread.start()
    return thread


@reports_errors
def worker(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then stop.")] = False,
    config: ConfigOption = None,
) -> None:
    """Send scheduled issues when they are due; runs until stopped (Ctrl-C or SIGTERM)."""
    from newsletter.config import load_config
    from newsletter.deliver.worker import Worker

    settings = load_config(config)
    runner = Worker(settings, send_scheduled, report=_print)
    if once:
        runner.start()
        runner.run_due()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    console.err.print(
        f"Worker watching {settings.database_location} every "
        f"{settings.schedule.poll_seconds:g} s (Ctrl-C to stop)"
    )
    try:
        runner.run(stop)
    except KeyboardInterrupt:
        stop.set()
    console.err.print("Worker stopped.")
