"""Sending an issue as one library call: `send`, `dry_run` and `test_send`, each returning a report.

A `Campaign` is an issue made ready to go: built, with its signer, DKIM key, subscriber store,
ledger and the send's settings resolved against what the ledger remembers. The settings of a
send (transport, relays, segment, rate, connections) are recorded when it starts; a later call
without options continues exactly that send, and one asking for another transport, relays or
segment is refused (`SendRefused`) unless `force` is given, so a resume never goes elsewhere.
The CLI and the benchmark call this module; it prints nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.models import Issue
from newsletter.config import Config
from newsletter.deliver.came_back import issue_health
from newsletter.deliver.db import connect
from newsletter.deliver.journal import apply_journal
from newsletter.deliver.keycheck import check_signing_key
from newsletter.deliver.ledger import Ledger, SendRecord
from newsletter.deliver.message import DkimKey, MessageFactory, Recipient
from newsletter.deliver.relay_budget import RelayBudget
from newsletter.deliver.segments import Segment, check_tags
from newsletter.deliver.sender import Lane, Policy, SendReport, make_lanes, send_issue
from newsletter.deliver.subscribers import SubscriberStore, normalize_email
from newsletter.deliver.tokens import key_source, signer_for
from newsletter.deliver.transports import ConnectionLost, DeliveryError, ReplyLost
from newsletter.errors import InputError, Problem, SendRefused
from newsletter.validation import parse_rate

TRANSPORTS = ("outbox", "smtp")
Progress = Callable[[SendReport], None]


@dataclass(frozen=True)
class SendOptions:
    """What the caller asks for; None means "as recorded, else as configured"."""

    transport: str | None = None
    segment: Segment | None = None
    rate: str | None = None
    connections: int | None = None
    resend_uncertain: bool = False
    force: bool = False
    accept_new_key: bool = False
    #: A catch-up: only those who became active after the issue's first send started (in
    #: `segment`, else in the recorded send's segment).
    new_since_sent: bool = False


@dataclass(frozen=True)
class DryRunReport:
    """What a send would do, with every copy rendered and nothing sent or recorded."""

    would_send: int
    bytes: int
    transport: str
    skipped_sent: int
    skipped_inactive: int


@dataclass(frozen=True)
class TestResult:
    """One test copy: where it went and what the server said."""

    to: str
    ok: bool
    reply: str


@dataclass(frozen=True)
class TestSendReport:
    """The test copies, in the order asked for."""

    results: list[TestResult] = field(default_factory=list)


def policy_for(config: Config) -> Policy:
    """The retry and pause rules of `[sending]`."""
    sending = config.sending
    return Policy(
        sending.max_attempts,
        sending.retry_delay,
        sending.max_consecutive_failures,
        sending.batch_size,
    )


def _rate(text: str | None) -> float | None:
    try:
        return parse_rate(text) if text else None
    except ValueError as exc:
        raise InputError(Problem(str(exc), field="--rate", code="bad-rate")) from None


def _relays(config: Config, transport: str) -> str:
    return ", ".join(server.name for server in config.smtp) if transport == "smtp" else ""


def _describe(record: SendRecord) -> str:
    parts = [f"--transport {record.transport}"]
    if record.relays:
        parts.append(f"relays {record.relays}")
    parts.append(record.segment.describe())
    return ", ".join(parts)


def _segment(ledger: Ledger, options: SendOptions) -> Segment | None:
    """The segment asked for; for a catch-up, that (or the recorded one) since the first send."""
    if not options.new_since_sent:
        return options.segment
    recorded = ledger.record()
    if recorded is None or not ledger.counts()["sent"]:
        raise InputError(
            Problem(
                f"{ledger.issue} has not been sent yet, so there is nothing to catch up on; "
                "send it without --new-since-sent",
                code="nothing-to-catch-up",
            )
        )
    base = options.segment if options.segment is not None else recorded.segment
    return replace(base, since=ledger.first_started(), subscriber=0)


def resolve(config: Config, ledger: Ledger, options: SendOptions) -> SendRecord:
    """The settings this send runs with: the recorded ones while the issue's send is under way
    (a different transport, relays or segment is refused unless forced), else the options
    over the configuration (a finished send may be followed by one to another segment)."""
    _rate(options.rate)
    if options.transport is not None and options.transport not in TRANSPORTS:
        raise InputError(
            Problem(
                f"unknown transport '{options.transport}'; use outbox or smtp", code="bad-option"
            )
        )
    segment = _segment(ledger, options)
    recorded = ledger.record()
    if recorded is not None and not ledger.count_pending(recorded.segment):
        recorded = None  # that send is done: this is a new one (another segment, a catch-up)
    if recorded is None or options.force:
        transport = options.transport or config.sending.transport
        return SendRecord(
            transport, _relays(config, transport), segment or Segment(), options.rate or "",
            options.connections or 0,
        )  # fmt: skip
    wanted = SendRecord(
        options.transport or recorded.transport,
        _relays(config, options.transport or recorded.transport),
        recorded.segment if segment is None else segment,
        options.rate or recorded.rate,
        options.connections or recorded.connections,
    )
    if (wanted.transport, wanted.relays, wanted.segment) != (
        recorded.transport, recorded.relays, recorded.segment,
    ):  # fmt: skip
        raise SendRefused(
            Problem(
                f"the send of {ledger.issue} was started with {_describe(recorded)}; this asks "
                f"for {_describe(wanted)}. Run send without options to continue it as started, "
                "or add --force to send the rest this new way",
                code="send-in-progress",
            )
        )
    return wanted


class Campaign:
    """One issue made ready to send. Use as a context manager (it holds database files)."""

    def __init__(self, config: Config, issue: Path | Issue, options: SendOptions) -> None:
        self.config = config
        self.options = options
        loaded = issue if isinstance(issue, Issue) else load_issue(issue)
        self.issue = loaded
        self.built = build_issue(loaded, config)
        self.slug = loaded.slug
        self.signer = signer_for(config)
        self.dkim = DkimKey.from_config(config)
        database = config.database_location
        self.budget = RelayBudget(database)
        self.store = SubscriberStore.open(database)
        try:
            self.ledger = Ledger(connect(database), self.slug)
        except BaseException:
            self.store.conn.close()
            raise
        try:
            self.settings = resolve(config, self.ledger, options)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Campaign:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connections."""
        self.budget.close()
        self.ledger.conn.close()
        self.store.conn.close()

    @property
    def subject(self) -> str:
        """The issue's subject line."""
        return self.built.subject

    @property
    def warnings(self) -> list[str]:
        """What the build noticed."""
        return list(self.built.warnings)

    @property
    def segment(self) -> Segment:
        """Who this send goes to (among the active subscribers)."""
        return self.settings.segment

    @property
    def transport(self) -> str:
        """outbox or smtp."""
        return self.settings.transport

    def _check_audience(self) -> None:
        """The welcome issue goes to one subscriber at a time, never to a list; tags that no
        active subscriber has are refused (EmptySegment)."""
        if self.slug == self.config.welcome.slug() and not self.segment.subscriber:
            raise SendRefused(
                Problem(
                    f"{self.slug} is the welcome email ([welcome] issue): it goes to each "
                    "subscriber when they confirm or are added with --welcome, never to the "
                    "list; try it with --test",
                    code="welcome-not-for-the-list",
                )
            )
        if self.options.segment is not None:
            check_tags(self.ledger.conn, self.options.segment)

    def _check_key(self) -> None:
        check_signing_key(self.ledger.conn, self.signer, key_source(self.config),
                          accept=self.options.accept_new_key)  # fmt: skip

    def recipients(self) -> int:
        """How many subscribers the send would go to now."""
        return self.ledger.count_pending(self.segment, self.options.resend_uncertain, unqueued=True)

    def _lanes(self, connections: int | None = None) -> list[Lane]:
        settings = self.settings
        return make_lanes(
            self.config, settings.transport, self.slug, rate=_rate(settings.rate),
            connections=connections or settings.connections or None, budget=self.budget,
        )  # fmt: skip

    def send(
        self,
        *,
        stop: threading.Event | None = None,
        on_start: Progress = lambda report: None,
        on_progress: Progress = lambda report: None,
        policy: Policy | None = None,
    ) -> SendReport:
        """Record how the send is started (or check it against the record), then send.

        The signing key must be the one the links already sent were made with, and
        unsubscribes journaled while the database was busy are applied first. The send
        pauses when the issue's complaint or hard-bounce rate passes `[inbound]`'s threshold.
        """
        self._check_audience()
        self._check_key()
        apply_journal(self.config, self.signer, self.store)
        lanes = self._lanes()
        started = self.ledger.record() is not None
        saved = self.ledger.save_record(self.settings, replace=started or self.options.force)
        if saved != self.settings:  # another process has just started it, maybe another way
            self.settings = resolve(self.config, self.ledger, self.options)
            lanes = self._lanes()
        factory = MessageFactory(self.built, self.config, self.signer, dkim_key=self.dkim)
        return send_issue(
            factory, self.ledger, self.store, lanes,
            segment=self.segment, resend_uncertain=self.options.resend_uncertain,
            policy=policy or policy_for(self.config), on_start=on_start,
            on_progress=on_progress, stop=stop,
            health=lambda: issue_health(self.store, self.slug, self.config),
        )  # fmt: skip

    def dry_run(self) -> DryRunReport:
        """Render every copy the send would make; send and record nothing."""
        self._check_audience()
        self._check_key()
        factory = MessageFactory(self.built, self.config, self.signer, dkim_key=self.dkim)
        count = size = 0
        for job in self.ledger.pending(self.segment, self.options.resend_uncertain, unqueued=True):
            copy = factory.render(
                Recipient(
                    job.email, job.first_name, job.last_name, job.subscriber_id, job.public_id
                )
            )
            count += 1
            size += len(copy.data)
        sent, inactive = self.ledger.skipped(self.segment)
        return DryRunReport(count, size, self.settings.transport, sent, inactive)

    def test_send(self, addresses: list[str]) -> TestSendReport:
        """Send one copy marked [TEST] (and [DRAFT] for a draft) to each address, over one
        connection; record nothing."""
        built = self.built
        if self.issue.status == "draft":
            built = replace(built, subject=f"[DRAFT] {built.subject}")
        factory = MessageFactory(built, self.config, self.signer, test=True, dkim_key=self.dkim)
        recipients = []
        for address in addresses:
            email = normalize_email(address)
            known = self.store.get(email)
            names = (known.first_name, known.last_name) if known else ("", "")
            recipients.append(Recipient(email, *names))
        transport = self._lanes(connections=1)[0].transport
        transport.open()
        report = TestSendReport()
        try:
            for recipient in recipients:
                outgoing = factory.render(recipient)
                try:
                    reply = transport.send(
                        outgoing.sender, recipient.email, outgoing.data, lambda: None
                    )
                    report.results.append(TestResult(recipient.email, True, reply))
                except (DeliveryError, ConnectionLost, ReplyLost) as exc:
                    report.results.append(TestResult(recipient.email, False, str(exc)))
                    if not isinstance(exc, DeliveryError):
                        transport.open()
        finally:
            transport.close()
        return report


def send(
    config: Config,
    issue: Path | Issue,
    options: SendOptions = SendOptions(),
    *,
    stop: threading.Event | None = None,
    on_start: Progress = lambda report: None,
    on_progress: Progress = lambda report: None,
) -> SendReport:
    """Send `issue` to every active subscriber (of the segment) who has not had it yet."""
    with Campaign(config, issue, options) as campaign:
        return campaign.send(stop=stop, on_start=on_start, on_progress=on_progress)


def dry_run(
    config: Config, issue: Path | Issue, options: SendOptions = SendOptions()
) -> DryRunReport:
    """What `send` would do, rendering every copy, sending and recording nothing."""
    with Campaign(config, issue, options) as campaign:
        return campaign.dry_run()


def test_send(
    config: Config, issue: Path | Issue, addresses: list[str], options: SendOptions = SendOptions()
) -> TestSendReport:
    """A copy marked [TEST] to each of `addresses`; nothing recorded."""
    with Campaign(config, issue, replace(options, force=True)) as campaign:
        return campaign.test_send(addresses)
