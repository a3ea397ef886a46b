"""`send_issue`: every pending subscriber gets one copy, over several reused connections.

The main thread streams pending subscribers from the ledger and hands them to one worker
thread per connection; workers render each copy (`MessageFactory`), deliver it, and record
the commit point and success in the ledger themselves, so a kill at any instant loses nothing.
The main thread decides what every other outcome means: retry with exponential backoff (4xx,
dropped connection), `deferred` after the last attempt, `failed` on 5xx (550/551/553 also
mark the subscriber bounced), and a pause after too many failures in a row.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from newsletter.config import Config
from newsletter.deliver.ledger import Job, Ledger
from newsletter.deliver.message import HeaderInjectionError, MessageFactory, Recipient
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.transports import (
    ConnectionLost,
    DeliveryError,
    MaildirTransport,
    SmtpTransport,
    Transport,
    TransportError,
)
from newsletter.errors import ConfigError, Problem
from newsletter.validation import parse_rate


class RateLimiter:
    """Spaces out sends to at most `per_second`, across the threads that share it."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller's slot comes."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            time.sleep(slot - now)


@dataclass(frozen=True)
class Lane:
    """One connection: its transport and the rate limiter of the server it belongs to."""

    transport: Transport
    limiter: RateLimiter | None = None


def make_lanes(
    config: Config,
    transport: str,
    slug: str,
    *,
    rate: float | None = None,
    connections: int | None = None,
) -> list[Lane]:
    """The connections a send uses: the outbox, or each SMTP server's, with its rate limit.

    `rate` (messages per second) and `connections` override the configured ones; an
    overriding rate is shared by all servers together.
    """
    if transport == "outbox":
        return [Lane(MaildirTransport(config.path(config.sending.outbox) / slug))]
    if not config.smtp:
        raise ConfigError(
            Problem("no SMTP server is configured; add an [[smtp]] table to newsletter.toml")
        )
    shared = RateLimiter(rate) if rate else None
    lanes = []
    for server in config.smtp:
        limiter = shared or (RateLimiter(parse_rate(server.rate)) if server.rate else None)
        count = connections or server.connections
        lanes += [Lane(SmtpTransport(server), limiter) for _ in range(count)]
    return lanes


@dataclass(frozen=True)
class Policy:
    """Retry and pause rules."""

    max_attempts: int = 3
    retry_delay: float = 2.0
    max_consecutive_failures: int = 20
    batch_size: int = 500


@dataclass
class SendReport:
    """What a run did. `pending` is what it set out to send; `uncertain`, the copies left
    `sending` by an earlier crash that it did not resend."""

    issue: str
    transport: str
    pending: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    uncertain: int = 0
    skipped_sent: int = 0
    skipped_inactive: int = 0
    paused: str | None = None
    interrupted: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Subscribers dealt with for good in this run."""
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class _Result:
    job: Job
    kind: str  # sent | temporary | permanent | retry | invalid | returned | dead
    reply: str = ""
    code: int = 0


def _work(
    lane: Lane,
    jobs: queue.Queue[Job | None],
    results: queue.Queue[_Result],
    factory: MessageFactory,
    ledger: Ledger,
    envelope_from: str,
    stop: threading.Event,
) -> None:
    transport = lane.transport
    while (job := jobs.get()) is not None:
        if stop.is_set():
            results.put(_Result(job, "returned"))
            continue
        try:
            outgoing = factory.render(
                Recipient(
                    job.email, job.first_name, job.last_name, job.subscriber_id, job.public_id
                )
            )
        except HeaderInjectionError as exc:
            results.put(_Result(job, "invalid", str(exc)))
            continue
        if lane.limiter:
            lane.limiter.wait()
        try:
            reply = transport.send(
                envelope_from,
                job.email,
                outgoing.data,
                lambda j=job, o=outgoing: ledger.mark_sending(
                    j.subscriber_id, o.message_id, transport.name
                ),
            )
        except DeliveryError as exc:
            kind = "permanent" if exc.permanent else "temporary"
            results.put(_Result(job, kind, exc.reply, exc.code))
        except ConnectionLost as exc:
            results.put(_Result(job, "retry", str(exc)))
            try:
                transport.open()
            except TransportError as error:
                results.put(_Result(job, "dead", str(error)))
                return
        except TransportError as exc:
            results.put(_Result(job, "retry", str(exc)))
            results.put(_Result(job, "dead", str(exc)))
            return
        else:
            ledger.mark(job.subscriber_id, "sent", reply)
            results.put(_Result(job, "sent", reply))


class _Run:
    """The state of one send: in-flight count, retry schedule, counters."""

    def __init__(
        self,
        ledger: Ledger,
        store: SubscriberStore,
        policy: Policy,
        report: SendReport,
        on_progress: Callable[[SendReport], None],
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.policy = policy
        self.report = report
        self.on_progress = on_progress
        self.retries: list[tuple[float, int, Job]] = []
        self.in_flight = 0
        self.alive = 0
        self.failures_in_a_row = 0

    def _retry(self, job: Job, reply: str, delay: float) -> None:
        attempts = job.attempts + 1
        if attempts >= self.policy.max_attempts:
            self.ledger.mark(job.subscriber_id, "deferred", reply, attempts)
            self.report.deferred += 1
            return
        self.ledger.mark(job.subscriber_id, "queued", reply, attempts)
        due = time.monotonic() + delay * 2 ** (attempts - 1)
        heapq.heappush(self.retries, (due, job.subscriber_id, replace(job, attempts=attempts)))

    def handle(self, result: _Result) -> None:
        """Account for one worker result."""
        job, kind, report = result.job, result.kind, self.report
        reply = f"{result.code} {result.reply}" if result.code else result.reply
        if kind == "dead":
            self.alive -= 1
            report.warnings.append(f"a connection was lost for good: {result.reply}")
            return
        self.in_flight -= 1
        if kind == "returned":
            return
        self.failures_in_a_row = 0 if kind == "sent" else self.failures_in_a_row + 1
        if kind == "sent":
            report.sent += 1
        elif kind == "temporary":
            self._retry(job, reply, self.policy.retry_delay)
        elif kind == "retry":
            self._retry(job, f"connection lost: {result.reply}", 0.0)
        else:  # permanent or invalid
            self.ledger.mark(job.subscriber_id, "failed", reply, job.attempts + 1)
            report.failed += 1
            if kind == "permanent" and result.code in (550, 551, 553):
                self.store.set_status(
                    job.subscriber_id,
                    Status.BOUNCED,
                    reply,
                    source="bounce",
                    issue=self.ledger.issue,
                )
                report.bounced += 1
        if self.failures_in_a_row >= self.policy.max_consecutive_failures and not report.paused:
            report.paused = (
                f"{self.failures_in_a_row} failures in a row, the last: {reply}; "
                "check the server, then run send again to resume"
            )
        self.on_progress(report)

    def next_job(self, pending: Callable[[], Job | None]) -> Job | None:
        """A retry that is due, else the next pending subscriber."""
        if self.retries and self.retries[0][0] <= time.monotonic():
            return heapq.heappop(self.retries)[2]
        return pending()


def send_issue(
    factory: MessageFactory,
    ledger: Ledger,
    store: SubscriberStore,
    lanes: Sequence[Lane],
    envelope_from: str,
    *,
    tag: str | None = None,
    resend_uncertain: bool = False,
    policy: Policy = Policy(),
    on_start: Callable[[SendReport], None] = lambda report: None,
    on_progress: Callable[[SendReport], None] = lambda report: None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send the issue to every subscriber the ledger says is still pending.

    The lanes must be open. Returns when everything pending was dealt with, or after a pause,
    a stop request (`stop` set, or Ctrl-C) or the loss of every connection; messages already
    handed to a connection are finished first.
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    report = SendReport(ledger.issue, ", ".join(sorted({lane.transport.name for lane in lanes})))
    ledger.enqueue(tag)
    report.skipped_sent, report.skipped_inactive = ledger.skipped(tag)
    report.pending = ledger.count_pending(tag, resend_uncertain)
    report.uncertain = 0 if resend_uncertain else ledger.counts()["sending"]
    on_start(report)
    run = _Run(ledger, store, policy, report, on_progress)
    jobs: queue.Queue[Job | None] = queue.Queue()
    results: queue.Queue[_Result] = queue.Queue()
    threads = [
        threading.Thread(
            target=_work,
            args=(lane, jobs, results, factory, ledger, envelope_from, stop),
            daemon=True,
        )
        for lane in lanes
    ]
    run.alive = len(threads)
    for thread in threads:
        thread.start()
    stream = ledger.pending(tag, resend_uncertain, policy.batch_size)
    exhausted = False

    def pending() -> Job | None:
        nonlocal exhausted
        job = None if exhausted else next(stream, None)
        exhausted = job is None
        return job

    capacity = 2 * len(threads)
    try:
        while True:
            try:
                feeding = not (stop.is_set() or report.paused or run.alive == 0)
                while feeding and run.in_flight < capacity and (job := run.next_job(pending)):
                    jobs.put(job)
                    run.in_flight += 1
                if run.in_flight == 0 and (not feeding or (exhausted and not run.retries)):
                    break
                wait = run.retries[0][0] - time.monotonic() if run.retries else 0.5
                with contextlib.suppress(queue.Empty):
                    run.handle(results.get(timeout=max(0.01, min(wait, 0.5))))
            except KeyboardInterrupt:
                stop.set()
                report.interrupted = True
    finally:
        stop.set()
        for _ in threads:
            jobs.put(None)
        for thread in threads:
            thread.join()
        while not results.empty():
            run.handle(results.get())
    if run.alive == 0 and not report.interrupted:
        report.paused = report.paused or "every connection was lost; run send again to resume"
    report.seconds = time.monotonic() - started
    return report
