"""The worker behind `newsletter worker` (and `newsletter serve`): sends scheduled issues when due.

It polls the schedules table, claims what is due (one claim wins, see `schedule`), and hands the
issue to `send_issue`, the one function that sends; while that runs, a heartbeat renews the
claim's lease so no other worker takes it over. When it starts, schedules already later than
the grace period are closed as `missed` and reported rather than fired long after their time.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import Config
from newsletter.deliver.db import connect
from newsletter.deliver.schedule import Scheduled, ScheduleStore
from newsletter.deliver.sender import SendReport
from newsletter.errors import NewsletterError

#: Sends one scheduled issue; raises NewsletterError when it must not or cannot.
SendIssue = Callable[[Config, Path, Scheduled], SendReport]
Clock = Callable[[], dt.datetime]


def utc_clock() -> dt.datetime:
    """The real clock: now, in UTC."""
    return dt.datetime.now(dt.UTC)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def outcome(report: SendReport) -> tuple[str, str]:
    """The schedule's final status and a one-line account of a send."""
    line = (
        f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, "
        f"skipped {report.skipped_sent} already sent"
    )
    if report.paused:
        return "failed", f"{line}; paused: {report.paused}"
    return "sent", line


@dataclass
class Worker:
    """Sends due schedules of one project through `send_issue`."""

    config: Config
    send_issue: SendIssue
    clock: Clock = utc_clock
    lease: dt.timedelta = dt.timedelta(minutes=5)
    report: Callable[[str], None] = lambda line: None
    name: str = field(default_factory=_worker_name)

    def _store(self) -> ScheduleStore:
        return ScheduleStore(connect(self.config.database_location))

    def start(self) -> list[Scheduled]:
        """Close (and report) the schedules that are already too late to send blindly."""
        grace = dt.timedelta(minutes=self.config.schedule.grace_minutes)
        store = self._store()
        try:
            missed = store.mark_missed(self.clock(), grace)
        finally:
            store.conn.close()
        for row in missed:
            self.report(
                f"missed: {row.issue} was due {row.local_due:%Y-%m-%d %H:%M %Z}, more than "
                f"{self.config.schedule.grace_minutes:g} minutes ago; not sent. Send it now with "
                f"'newsletter send {row.issue_dir}' or schedule it again"
            )
        return missed

    def run_due(self) -> int:
        """Claim and send every schedule that is due now; return how many were handled."""
        handled = 0
        store = self._store()
        try:
            while (row := store.claim_due(self.name, self.clock(), self.lease)) is not None:
                self._fire(store, row)
                handled += 1
        finally:
            store.conn.close()
        return handled

    def _heartbeat(self, row: Scheduled, done: threading.Event) -> None:
        store = self._store()
        try:
            while not done.wait(self.lease.total_seconds() / 3):
                store.renew(row.id, self.name, self.clock(), self.lease)
        finally:
            store.conn.close()

    def _fire(self, store: ScheduleStore, row: Scheduled) -> None:
        self.report(f"sending {row.issue} (due {row.local_due:%Y-%m-%d %H:%M %Z})")
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(row, done), daemon=True)
        beat.start()
        try:
            report = self.send_issue(self.config, self.config.root / row.issue_dir, row)
            status, line = outcome(report)
        except NewsletterError as exc:
            status, line = "failed", " ".join(str(exc).splitlines())
        except Exception as exc:  # a bug must not stop the worker: record it and go on
            status, line = "failed", f"unexpected {type(exc).__name__}: {exc}"
        finally:
            done.set()
            beat.join(timeout=10)
        store.finish(row.id, self.name, status, line, self.clock())
        self.report(f"{status}: {row.issue}: {line}")

    def run(self, stop: threading.Event) -> None:
        """Report missed schedules, then send what is due every poll until `stop` is set."""
        self.start()
        while True:
            try:
                self.run_due()
            except NewsletterError as exc:  # the database is locked or gone: say so, try again
                self.report(f"cannot read the schedules: {exc}")
            if stop.wait(self.config.schedule.poll_seconds):
                return
