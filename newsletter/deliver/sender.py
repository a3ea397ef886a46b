"""`send_issue`: every pending subscriber gets one copy, over several reused connections.

The main thread claims batches of rows from the ledger (other processes may be claiming from
the same issue) and hands them to one worker thread per connection; workers open their
connection, render each copy (`MessageFactory`), deliver it, and record the commit point and
success in the ledger themselves, so a kill at any instant loses nothing. The main thread
decides what every other outcome means: retry with exponential backoff (4xx, connection lost
before the final "."), uncertain (reply lost after it), `deferred` after the last attempt,
`failed` on 5xx (550/551/553 also mark the subscriber bounced) or on any error while
rendering or handing over one copy, and a pause after too many failures in a row.

No wait is unbounded: every queue read has a timeout, the main loop checks `stop` at least
twice a second, and on a stop what is in flight gets `Policy.grace` seconds to finish before
its connections are shut under it; a worker that cannot be reached then is left behind (its
rows are released, and its claim no longer lets it record a commit point).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from newsletter.config import Config
from newsletter.deliver.db import failure
from newsletter.deliver.ledger import ClaimLost, Job, Ledger, stamp
from newsletter.deliver.message import MessageFactory, Recipient
from newsletter.deliver.relay_budget import Budget, LocalBudget
from newsletter.deliver.segments import Segment
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.transports import (
    ConnectionLost,
    DeliveryError,
    MaildirTransport,
    ReplyLost,
    SmtpTransport,
    Transport,
)
from newsletter.errors import ConfigError, DatabaseError, NewsletterError, Problem, TransportError
from newsletter.validation import parse_rate

#: The least time between two `health()` questions of one send.
HEALTH_SECONDS = 1.0


#: A message may start at most this many slots after its own, else the slot is given up: so
#: in any W seconds at most ceil(rate * W) + BURST messages start, across all processes.
BURST = 3
#: Seconds' worth of slots a process takes from the budget at once (at least one slot): at a
#: high rate one round trip to the database serves many messages.
RESERVE_SECONDS = 0.1


class RateLimiter:
    """Spaces out sends to one relay (or to all, `relay` "*") to at most `per_second`.

    The slots come from `budget`, a few at a time (`RESERVE_SECONDS`' worth), and are handed
    to this process's threads in order; the budget in the database holds across processes
    (relay_budget.py). A thread starts its message at its slot, and gives the slot up when it
    could only start more than `BURST` slots late (it was busy, or woke late), so a slot used
    late cannot add to those of other processes beyond that burst.
    """

    def __init__(self, per_second: float, relay: str, budget: Budget) -> None:
        self.relay = relay
        self._spacing = 1.0 / per_second
        self._late = BURST * self._spacing
        self._batch = max(1, int(per_second * RESERVE_SECONDS))
        self._budget = budget
        self._slots: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def _slot(self) -> float:
        with self._lock:
            late = time.time() - self._late
            while self._slots and self._slots[0] < late:
                self._slots.popleft()
            if not self._slots:
                first = self._budget.take(self.relay, self._batch, self._spacing)
                self._slots.extend(first + i * self._spacing for i in range(self._batch))
            return self._slots.popleft()

    def wait(self, stop: threading.Event) -> None:
        """Block until this caller's slot comes, or `stop` is set."""
        while not stop.is_set():
            slot = self._slot()
            delay = slot - time.time()
            if delay > 0 and stop.wait(delay):
                return
            if time.time() - slot <= self._late:
                return


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
    budget: Budget | None = None,
) -> list[Lane]:
    """The connections a send uses: the outbox, or each SMTP server's, with its rate limit.

    `rate` (messages per second) and `connections` override the configured ones; an
    overriding rate is shared by all servers together. The rate limits draw on `budget`
    (the database's, shared with other processes), else on this process's own.
    """
    if transport == "outbox":
        return [Lane(MaildirTransport(config.path(config.sending.outbox) / slug))]
    if not config.smtp:
        raise ConfigError(
            Problem(
                "no SMTP server is configured; add an [[smtp]] table to newsletter.toml",
                code="missing-field",
            )
        )
    budget = budget or LocalBudget()
    shared = RateLimiter(rate, "*", budget) if rate else None
    lanes = []
    for server in config.smtp:
        limiter = shared or (
            RateLimiter(parse_rate(server.rate), server.name, budget) if server.rate else None
        )
        count = connections or server.connections
        lanes += [Lane(SmtpTransport(server), limiter) for _ in range(count)]
    return lanes


@dataclass(frozen=True)
class Policy:
    """Retry, pause, claim and stop rules."""

    max_attempts: int = 3
    retry_delay: float = 2.0
    max_consecutive_failures: int = 20
    batch_size: int = 500
    lease: float = 60.0
    grace: float = 2.0
    reconnects: int = 3


@dataclass
class SendReport:
    """What a run did. `pending` is what it set out to send (all processes together);
    `uncertain`, the copies left `sending` when it ended, not resent (by a crash, here or in
    another process, or a reply lost); `shared_with`, the other processes sending the same
    issue when this one started."""

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
    shared_with: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Subscribers dealt with for good in this run."""
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class _Result:
    kind: str  # opened | dead | fatal | sent | temporary | permanent | retry | invalid |
    #            uncertain | returned
    job: Job | None = None
    reply: str = ""
    code: int = 0
    error: NewsletterError | None = None  # for `fatal`: what the send raises; `dead`: why


def _described(exc: BaseException) -> str:
    """An unexpected exception in one line: its type and message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Worker:
    """One connection's thread: opens it, then delivers the jobs it takes from the queue."""

    def __init__(
        self,
        lane: Lane,
        jobs: queue.Queue[Job | None],
        results: queue.Queue[_Result],
        factory: MessageFactory,
        ledger: Ledger,
        halt: threading.Event,
        reconnects: int,
    ) -> None:
        self.lane, self.jobs, self.results = lane, jobs, results
        self.factory, self.ledger = factory, ledger
        self.halt, self.reconnects = halt, reconnects
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        """The thread's body; whatever happens, it ends with a result the main loop reads."""
        transport = self.lane.transport
        try:
            transport.open()
            self.results.put(_Result("opened"))
            self._loop()
        except TransportError as exc:
            self.results.put(_Result("dead", reply=str(exc), error=exc))
        except NewsletterError as exc:  # a full disk, a missing password...: the send stops
            self.results.put(_Result("fatal", reply=str(exc), error=exc))
        except BaseException as exc:  # never die silently: the main loop must know
            self.results.put(_Result("dead", reply=_described(exc)))
        finally:
            transport.close()

    def _loop(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            if job is None:
                return
            if self.halt.is_set():
                self.results.put(_Result("returned", job))
                continue
            result = self._deliver(job)
            self.results.put(result)
            if result.kind == "fatal":
                return
            if result.kind == "retry" or result.code == -1:
                self._reconnect(result.reply)

    def _reconnect(self, reason: str) -> None:
        """Open the connection again (a few tries, backing off); TransportError when it
        cannot be."""
        transport = self.lane.transport
        transport.close()
        code = TransportError.code
        for attempt in range(self.reconnects):
            if self.halt.wait(0.2 * 2**attempt if attempt else 0):
                raise TransportError(f"stopped while reconnecting after: {reason}")
            try:
                transport.open()
                return
            except TransportError as exc:
                reason, code = str(exc), exc.code
        raise TransportError(reason, code=code)

    def _deliver(self, job: Job) -> _Result:
        """Render and deliver one copy; every exception becomes this copy's result.

        Code -1: the connection was dropped or is in an unknown state, so it is reopened.
        """
        try:
            outgoing = self.factory.render(
                Recipient(
                    job.email, job.first_name, job.last_name, job.subscriber_id, job.public_id
                )
            )
        except Exception as exc:
            return _Result("invalid", job, str(exc) if isinstance(exc, NewsletterError)
                           else _described(exc))  # fmt: skip
        if self.lane.limiter:
            try:
                self.lane.limiter.wait(self.halt)
            except DatabaseError as exc:
                return _Result("fatal", job, str(exc), error=exc)
            if self.halt.is_set():
                return _Result("returned", job)
        transport, committed = self.lane.transport, False

        def commit_point() -> None:
            nonlocal committed
            self.ledger.mark_sending(job.subscriber_id, outgoing.message_id, transport.name)
            committed = True

        try:
            reply = transport.send(outgoing.sender, job.email, outgoing.data, commit_point)
        except DeliveryError as exc:
            return _Result("permanent" if exc.permanent else "temporary", job, exc.reply, exc.code)
        except ConnectionLost as exc:
            return _Result("retry", job, str(exc))
        except ReplyLost as exc:
            return _Result("uncertain", job, f"connection lost before the reply: {exc}", -1)
        except ClaimLost:
            return _Result("returned", job, "claim lost", -1)
        except DatabaseError as exc:
            return _Result("fatal", job, str(exc), error=exc)
        except TransportError as exc:  # the outbox cannot be written: this worker is done
            self.results.put(_Result("retry", job, str(exc)))
            raise
        except Exception as exc:
            kind = "uncertain" if committed else "invalid"
            return _Result(kind, job, _described(exc), -1)
        try:
            self.ledger.mark(job.subscriber_id, "sent", reply)
        except DatabaseError as exc:
            return _Result("fatal", job, str(exc), error=exc)
        return _Result("sent", job, reply)


class _Run:
    """The state of one send: claimed jobs, in-flight count, retry schedule, counters."""

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
        self.claimed: collections.deque[Job] = collections.deque()
        self.in_flight = 0
        self.alive = 0
        self.opened = 0
        self.failures_in_a_row = 0
        self.lost: list[str] = []
        self.lost_code = TransportError.code  # the first lost connection's error code
        self.fatal: NewsletterError | None = None

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
        kind, report = result.kind, self.report
        if kind == "opened":
            self.opened += 1
            return
        if kind in ("dead", "fatal") and result.job is None:
            self.alive -= 1
            if kind == "fatal":
                self.fatal = self.fatal or result.error
            else:
                if result.error is not None and not self.lost:
                    self.lost_code = result.error.code
                self.lost.append(result.reply)
            return
        job = result.job
        assert job is not None
        self.in_flight -= 1
        reply = f"{result.code} {result.reply}" if result.code > 0 else result.reply
        if kind == "returned":
            return
        if kind == "fatal":  # the copy's row is as the failed write left it
            self.fatal = self.fatal or result.error
            return
        self.failures_in_a_row = 0 if kind == "sent" else self.failures_in_a_row + 1
        if kind == "sent":
            report.sent += 1
        elif kind == "temporary":
            self._retry(job, reply, self.policy.retry_delay)
        elif kind == "retry":
            self._retry(job, f"connection lost: {result.reply}", 0.0)
        elif kind == "uncertain":
            self.ledger.mark_uncertain(job.subscriber_id, reply)
            report.uncertain += 1
        else:  # permanent or invalid
            self.ledger.mark(job.subscriber_id, "failed", reply, job.attempts + 1)
            report.failed += 1
            if kind == "permanent" and result.code in (550, 551, 553):
                try:
                    self.store.set_status(
                        job.subscriber_id, Status.BOUNCED, reply, source="bounce",
                        issue=self.ledger.issue,
                    )  # fmt: skip
                except sqlite3.OperationalError as exc:
                    raise failure(exc, self.ledger.path) from None
                report.bounced += 1
        if self.failures_in_a_row >= self.policy.max_consecutive_failures and not report.paused:
            report.paused = (
                f"{self.failures_in_a_row} failures in a row, the last: {reply}; "
                "check the server, then run send again to resume"
            )
        self.on_progress(report)

    def next_job(self) -> Job | None:
        """A retry that is due, else the next claimed subscriber."""
        if self.retries and self.retries[0][0] <= time.monotonic():
            return heapq.heappop(self.retries)[2]
        return self.claimed.popleft() if self.claimed else None


def send_issue(
    factory: MessageFactory,
    ledger: Ledger,
    store: SubscriberStore,
    lanes: Sequence[Lane],
    *,
    segment: Segment | None = None,
    resend_uncertain: bool = False,
    policy: Policy = Policy(),
    on_start: Callable[[SendReport], None] = lambda report: None,
    on_progress: Callable[[SendReport], None] = lambda report: None,
    stop: threading.Event | None = None,
    health: Callable[[], str | None] = lambda: None,
) -> SendReport:
    """Send the issue to every subscriber the ledger says is still pending.

    The lanes are opened and closed here, each in its worker. Returns when everything pending
    was dealt with (by this process or another sending the same issue), or after a pause, a
    stop request (`stop` set, or Ctrl-C) or the loss of every connection. `health()` is asked
    before claiming more (at most every `HEALTH_SECONDS`): a reason it gives pauses the send
    (a complaint or bounce rate past its threshold). Raises
    TransportError when no connection could be opened at all, DatabaseError when the ledger
    cannot be written (full disk, read-only, locked); either way the claims are handed back.
    """
    started = time.monotonic()
    begun = stamp()
    stop = stop or threading.Event()
    report = SendReport(ledger.issue, ", ".join(sorted({lane.transport.name for lane in lanes})))
    ledger.enqueue(segment)
    ledger.reap()
    report.shared_with = ledger.held_elsewhere()
    report.skipped_sent, report.skipped_inactive = ledger.skipped(segment)
    report.pending = ledger.count_pending(segment, resend_uncertain)
    report.uncertain = 0 if resend_uncertain else ledger.uncertain()
    on_start(report)
    run = _Run(ledger, store, policy, report, on_progress)
    halt = threading.Event()
    jobs: queue.Queue[Job | None] = queue.Queue()
    results: queue.Queue[_Result] = queue.Queue()
    workers = [
        _Worker(lane, jobs, results, factory, ledger, halt, policy.reconnects) for lane in lanes
    ]
    run.alive = len(workers)
    for worker in workers:
        worker.thread.start()
    capacity = 2 * len(workers)
    claim_size = max(1, min(policy.batch_size, 8 * capacity))
    exhausted, reap, poll_at, health_at = False, False, 0.0, 0.0
    renew_at = time.monotonic() + policy.lease / 3

    def feed() -> None:
        """Hand out jobs up to the capacity, claiming more from the ledger when needed."""
        nonlocal exhausted, reap, poll_at, health_at
        while run.in_flight < capacity:
            job = run.next_job()
            if job is None and not exhausted and time.monotonic() >= health_at:
                report.paused = health()
                health_at = time.monotonic() + HEALTH_SECONDS
                if report.paused:
                    return
            if job is None and not exhausted and time.monotonic() >= poll_at:
                batch = ledger.claim(
                    claim_size, segment=segment, uncertain=resend_uncertain, before=begun, reap=reap
                )
                reap = False
                if batch:
                    run.claimed.extend(batch)
                    continue
                if ledger.held_elsewhere(("queued",)):
                    poll_at, reap = time.monotonic() + 0.25, True  # rows may come back
                else:
                    exhausted = True
            if job is None:
                return
            jobs.put(job)
            run.in_flight += 1

    try:
        while True:
            try:
                if stop.is_set() and not report.interrupted:
                    report.interrupted = True
                feeding = not (stop.is_set() or report.paused or run.fatal or run.alive == 0)
                if feeding and run.opened:
                    feed()
                if run.alive == 0:
                    _hand_back(jobs, run)
                idle = exhausted and not run.retries and not run.claimed
                if stop.is_set() or run.fatal:
                    break  # what is in flight gets the grace period in _finish
                if run.in_flight == 0 and (not feeding or idle):
                    break
                if time.monotonic() >= renew_at:
                    ledger.renew()
                    renew_at = time.monotonic() + policy.lease / 3
                due = run.retries[0][0] - time.monotonic() if run.retries else 0.5
                with contextlib.suppress(queue.Empty):
                    run.handle(results.get(timeout=max(0.01, min(due, 0.5))))
            except KeyboardInterrupt:
                stop.set()
    finally:
        _finish(workers, jobs, results, run, halt, policy.grace)
    report.seconds = time.monotonic() - started
    if run.fatal:
        raise run.fatal
    if not resend_uncertain:  # as the ledger has them now, whoever left them
        report.uncertain = ledger.uncertain()
    if run.alive == 0 and not report.interrupted:
        if run.opened == 0:
            reason = run.lost[0] if run.lost else "no connection could be opened"
            raise TransportError(reason, code=run.lost_code)
        last = f" (the last: {run.lost[-1]})" if run.lost else ""
        report.paused = report.paused or f"every connection was lost{last}; run send again"
    return report


def _hand_back(jobs: queue.Queue[Job | None], run: _Run) -> None:
    """No worker is left: what is still queued for them comes back unsent (their claims are
    released at the end). Each worker posted its copies' results before its own end, and
    those were read first, so nothing can be in flight any more."""
    with contextlib.suppress(queue.Empty):
        while True:
            jobs.get_nowait()
    run.in_flight = 0


def _finish(
    workers: list[_Worker],
    jobs: queue.Queue[Job | None],
    results: queue.Queue[_Result],
    run: _Run,
    halt: threading.Event,
    grace: float,
) -> None:
    """Stop the workers: what is in flight gets `grace` seconds, then its connection is shut;
    every result is accounted for and every claim this process still holds is released."""
    halt.set()
    for _ in workers:
        jobs.put(None)
    deadline = time.monotonic() + grace
    pending = [worker.thread for worker in workers]
    while pending and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            _account(run, results.get(timeout=0.05))
        pending = [thread for thread in pending if thread.is_alive()]
    for worker in workers:
        if worker.thread.is_alive():
            worker.lane.transport.abort()
    for worker in workers:
        worker.thread.join(timeout=1.0)
    while not results.empty():
        _account(run, results.get_nowait())
    with contextlib.suppress(DatabaseError):
        run.ledger.release()


def _account(run: _Run, result: _Result) -> None:
    """`run.handle`, which must not stop the shutdown when the database is failing."""
    try:
        run.handle(result)
    except DatabaseError as exc:
        run.fatal = run.fatal or exc
