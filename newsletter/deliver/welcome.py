"""The welcome email: the `[welcome] issue`, sent to one subscriber at a time when they join.

A welcome is that issue's ledger row for that subscriber, sent through the same send API as
any issue (`Campaign`, with a one-subscriber segment): it goes once (a row already `sent` is
never sent again), is retried like any copy (a 4xx is retried in the run; a row left `queued`
or `deferred` is retried by `Welcomer` when it starts and every `RETRY_EVERY` seconds, and by
`subscribers add --welcome`) and shows in `newsletter status` under the welcome issue's name.
The gate applies: a draft, or an issue with check errors, is not sent. `Welcomer` sends
welcomes from a thread of its own, so that the web app's confirmation page never waits for a
mail server nor fails because of one; the row is queued first (`queue_welcome`), so a welcome
asked for just before the process stops is sent when it starts again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from newsletter.checks.gate import send_gate
from newsletter.config import Config
from newsletter.deliver.campaign import Campaign, SendOptions
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.segments import Segment
from newsletter.deliver.sender import SendReport
from newsletter.errors import InputError, NewsletterError, Problem

_log = logging.getLogger("newsletter.welcome")
#: How many welcomes may wait for the thread; more are logged and dropped (their ledger rows
#: are not even queued, so a later `subscribers add --welcome` sends them).
BACKLOG = 10_000
#: How often, in seconds, `Welcomer` retries the welcomes left queued or deferred.
RETRY_EVERY = 900.0


def _ledger(config: Config) -> Ledger | None:
    slug = config.welcome.slug()
    return Ledger(connect(config.database_location), slug) if slug else None


def queue_welcome(config: Config, subscriber_id: int) -> None:
    """Queue the welcome's ledger row for this subscriber (nothing if they had it)."""
    ledger = _ledger(config)
    if ledger is not None:
        with contextlib.closing(ledger.conn):
            ledger.enqueue(Segment(subscriber=subscriber_id))


def waiting_welcomes(config: Config) -> list[int]:
    """The subscribers whose welcome is queued or deferred (still active)."""
    ledger = _ledger(config)
    if ledger is None:
        return []
    with contextlib.closing(ledger.conn):
        return [job.subscriber_id for job in ledger.pending()]


def send_welcome(
    config: Config, subscriber_id: int, *, stop: threading.Event | None = None
) -> SendReport:
    """Send the welcome issue to one subscriber, unless the ledger says they have had it."""
    if config.welcome.issue is None:
        raise InputError(
            Problem(
                'no welcome email is configured; add [welcome] issue = "issues/_welcome"',
                code="no-welcome",
            )
        )
    issue_dir = config.path(config.welcome.issue)
    send_gate(issue_dir, config)
    options = SendOptions(segment=Segment(subscriber=subscriber_id), force=True)
    with Campaign(config, issue_dir, options) as campaign:
        return campaign.send(stop=stop)


class Welcomer:
    """Sends welcomes in one background thread, in the order asked; `close` stops it."""

    def __init__(
        self,
        config: Config,
        send: Callable[..., SendReport] = send_welcome,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        self.config = config
        self.send = send
        self.retry_every = retry_every
        self.waiting: queue.Queue[int] = queue.Queue(BACKLOG)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="newsletter-welcome", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def put(self, subscriber_id: int) -> None:
        """Ask for a welcome to this subscriber; returns at once."""
        try:
            self.waiting.put_nowait(subscriber_id)
        except queue.Full:
            _log.error("welcome email not sent: %d welcomes are already waiting", BACKLOG)

    def idle(self) -> bool:
        """Nothing is waiting or being sent."""
        return self.waiting.unfinished_tasks == 0

    def _retry_waiting(self) -> None:
        """Ask again for the welcomes left queued or deferred."""
        try:
            for subscriber_id in waiting_welcomes(self.config):
                self.put(subscriber_id)
        except NewsletterError as exc:
            _log.error("welcome emails not retried: %s", " ".join(str(exc).splitlines()))

    def _run(self) -> None:
        retry_at = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() >= retry_at and self.idle():
                self._retry_waiting()
                retry_at = time.monotonic() + self.retry_every
            try:
                subscriber_id = self.waiting.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.send(self.config, subscriber_id, stop=self.stop)
            except NewsletterError as exc:  # the messages name files and settings, never people
                _log.error("welcome email not sent: %s", " ".join(str(exc).splitlines()))
            except Exception as exc:  # a bug must not stop the welcomes that follow
                _log.error("welcome email not sent: unexpected %s", type(exc).__name__)
            finally:
                self.waiting.task_done()

    def close(self, timeout: float) -> None:
        """Finish the welcomes waiting, for at most `timeout` seconds, then stop (a send under
        way is told to stop; what it leaves is in the ledger)."""
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and not self.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(max(0.0, deadline - time.monotonic()) + 5)
