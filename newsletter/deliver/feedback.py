"""What comes back, applied: each inbound decision is matched to a reader and a copy, stored
with the raw input and what was done, and acted on by one policy.

    hard        the reader becomes `bounced` at once
    soft        counted; `soft_bounce_limit` soft bounces within the reader's last
                `soft_bounce_window` sends make them `bounced` (a clean delivery in between
                starts the count again)
    policy      nobody is touched: it is about the sender (reputation, authentication,
                content, rate); flagged for `status` and `doctor`
    complaint   the reader becomes `complained` and is never mailed again
    unsubscribe a genuine token in a mail to the unsubscribe address unsubscribes its reader
    auto-reply, unclassified   nothing changes

A reader is found by the signed delivery token (VERP address or header), else by our
Message-ID (which names the issue and the reader, with a digest of the address), else by
address among the readers sent to in the last 30 days. A forged token matches nobody. Every
change can be undone (`newsletter inbound undo`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from newsletter.config import Config
from newsletter.deliver import db
from newsletter.deliver.subscribers import OPTED_OUT, Status, Subscriber, SubscriberStore
from newsletter.deliver.tokens import Signer
from newsletter.errors import InputError, Problem, TokenError
from newsletter.inbound.classify import Decision, Recipient, classify
from newsletter.inbound.verp import verify_token

_MESSAGE_ID = re.compile(r"<?(?P<slug>[^<>@\s]+)\.(?P<id>\d+)\.(?P<digest>[0-9a-f]{12})@")
#: How far back an address-only match may look for a copy we sent.
ADDRESS_MATCH_DAYS = 30
_WORST = {"hard": 3, "soft": 2, "policy": 1}


@dataclass(frozen=True)
class Applied:
    """What one decision meant for one reader (or for nobody)."""

    kind: str
    klass: str
    status: str
    address: str
    subscriber_id: int | None
    issue: str
    matched_by: str
    action: str
    reason: str
    event_id: int | None = None


def message_digest(slug: str, email: str) -> str:
    """The digest our Message-IDs carry: it ties an id to the reader's address."""
    return hashlib.sha256(f"{slug}\0{email}".encode()).hexdigest()[:12]


class Feedback:
    """Applies inbound decisions to the store of one project."""

    def __init__(
        self,
        store: SubscriberStore,
        config: Config,
        verp_key: bytes,
        unsubscribe_token: Callable[[str], tuple[str, str] | None],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.conn = store.conn
        self.config = config
        self.verp_key = verp_key
        self.unsubscribe_token = unsubscribe_token
        self.now = now

    # --- finding the reader and the copy ----------------------------------------------

    def _issues_of(self, subscriber_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT issue FROM deliveries WHERE subscriber_id = ? ORDER BY updated_at DESC",
            (subscriber_id,),
        )
        return [str(issue) for (issue,) in rows]

    def _by_token(self, token: str | None) -> tuple[Subscriber, str] | None:
        delivery = verify_token(self.verp_key, token) if token else None
        if delivery is None:
            return None
        subscriber = self.store.get_by_id(delivery.subscriber_id)
        if subscriber is None:
            return None
        issue = next((i for i in self._issues_of(subscriber.id) if delivery.is_for(i)), "")
        return subscriber, issue

    def _by_message_id(self, message_id: str | None) -> tuple[Subscriber, str] | None:
        match = _MESSAGE_ID.search(message_id or "")
        if match is None:
            return None
        subscriber = self.store.get_by_id(int(match["id"]))
        if subscriber is None or message_digest(match["slug"], subscriber.email) != match["digest"]:
            return None
        return subscriber, match["slug"]

    def _by_address(self, address: str) -> tuple[Subscriber, str] | None:
        subscriber = self.store.get(address) if address else None
        if subscriber is None:
            return None
        since = db.stored_time(self.now() - dt.timedelta(days=ADDRESS_MATCH_DAYS))
        row = self.conn.execute(
            "SELECT issue FROM deliveries WHERE subscriber_id = ? AND status = 'sent'"
            " AND updated_at >= ? ORDER BY updated_at DESC LIMIT 1",
            (subscriber.id, since),
        ).fetchone()
        return (subscriber, str(row[0])) if row else None

    def _match(self, decision: Decision, address: str) -> tuple[Subscriber | None, str, str]:
        for how, found in (
            ("token", self._by_token(decision.token)),
            ("message-id", self._by_message_id(decision.original_message_id)),
            ("address", self._by_address(address)),
        ):
            if found is not None:
                return found[0], found[1], how
        return None, "", ""

    # --- what it does -------------------------------------------------------------------

    def _soft_limit_reached(self, subscriber_id: int, issue: str) -> bool:
        """Soft bounces in the reader's last sends, counting back to the first clean one."""
        inbound = self.config.inbound
        recent = self._issues_of(subscriber_id)[: inbound.soft_bounce_window]
        soft = {
            str(i)
            for (i,) in self.conn.execute(
                "SELECT DISTINCT issue FROM inbound_events WHERE subscriber_id = ?"
                " AND class = 'soft' AND undone_at IS NULL",
                (subscriber_id,),
            )
        } | {issue}
        count = 0
        for sent in recent:
            if sent not in soft:
                break  # a clean delivery since: the count starts again
            count += 1
        return count >= inbound.soft_bounce_limit

    def _act(
        self, kind: str, klass: str, subscriber: Subscriber | None, issue: str
    ) -> tuple[str, Status | None]:
        """(what was done, the status to set or None)."""
        if subscriber is None:
            return "none: no reader matched", None
        target = {
            "complaint": Status.COMPLAINED,
            "unsubscribe": Status.UNSUBSCRIBED,
        }.get(kind)
        if kind == "bounce" and klass == "hard":
            target = Status.BOUNCED
        elif kind == "bounce" and klass == "soft":
            if not self._soft_limit_reached(subscriber.id, issue):
                return "soft bounce counted", None
            target = Status.BOUNCED
        elif kind == "bounce":
            return "flagged: a policy rejection, about the sender; the reader is untouched", None
        if target is None:
            return "none", None
        if subscriber.status == target or (
            subscriber.status in OPTED_OUT and target != Status.COMPLAINED
        ):
            return f"none: already {subscriber.status.value}", None
        return target.value, target

    def apply(
        self, decision: Decision, *, source: str, raw: bytes | None = None, dry_run: bool = False
    ) -> list[Applied]:
        """Match and act on one decision; store it (unless `dry_run`)."""
        if decision.kind == "unsubscribe":
            return [self._unsubscribe(decision, source, raw, dry_run)]
        recipients = decision.recipients or (Recipient("", "", "policy", ""),)
        if decision.kind != "bounce" and decision.kind != "complaint":
            recipients = recipients[:1]
        results = []
        for recipient in sorted(recipients, key=lambda r: -_WORST.get(r.klass, 0)):
            subscriber, issue, how = self._match(decision, recipient.address)
            if (
                how in ("token", "message-id")
                and len(recipients) > 1
                and subscriber
                and (recipient.address and recipient.address != subscriber.email.lower())
            ):
                continue  # the copy names one reader: the other addresses are someone else's
            klass = recipient.klass if decision.kind == "bounce" else ""
            action, target = self._act(decision.kind, klass, subscriber, issue)
            applied = Applied(decision.kind, klass, recipient.status, recipient.address,
                              subscriber.id if subscriber else None, issue, how, action,
                              decision.reason)  # fmt: skip
            results.append(self._record(applied, decision, subscriber, target, source, raw,
                                        dry_run))  # fmt: skip
            if subscriber is not None and how != "address":
                break  # one copy, one reader
        return results

    def _unsubscribe(
        self, decision: Decision, source: str, raw: bytes | None, dry_run: bool
    ) -> Applied:
        named = self.unsubscribe_token(decision.token) if decision.token else None
        subscriber = self.store.get(named[0]) if named else None
        issue = named[1] if named else ""
        action, target = self._act("unsubscribe", "", subscriber, issue)
        if named is None:
            action = "none: no genuine unsubscribe token"
        applied = Applied("unsubscribe", "", "", "", subscriber.id if subscriber else None,
                          issue, "unsubscribe-token" if named else "", action,
                          decision.reason)  # fmt: skip
        return self._record(applied, decision, subscriber, target, source, raw, dry_run)

    def _record(self, applied: Applied, decision: Decision, subscriber: Subscriber | None,
                target: Status | None, source: str, raw: bytes | None,
                dry_run: bool) -> Applied:  # fmt: skip
        if dry_run:
            return applied
        if subscriber is not None and target is not None:
            self.store.set_status(subscriber.id, target, f"{applied.kind}: {decision.reason}",
                                  source=_SOURCE[applied.kind], issue=applied.issue)  # fmt: skip
        event_id = self.conn.insert(
            "INSERT INTO inbound_events (received_at, source, kind, class, status, issue,"
            " subscriber_id, matched_by, reason, action, previous_status, decision, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (db.now(), source, applied.kind, applied.klass, applied.status, applied.issue,
             applied.subscriber_id, applied.matched_by, applied.reason, applied.action,
             subscriber.status.value if subscriber and target else "",
             json.dumps(asdict(decision)), raw),
        )  # fmt: skip
        return Applied(**{**asdict(applied), "event_id": event_id})

    def ingest(self, raw: bytes, *, source: str, dry_run: bool = False) -> list[Applied]:
        """Classify one raw message and apply it."""
        return self.apply(classify(raw), source=source, raw=raw, dry_run=dry_run)

    def undo(self, event_id: int) -> Applied:
        """Put the reader back as they were before this event changed them."""
        row = self.conn.execute("SELECT * FROM inbound_events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise InputError(
                Problem(
                    f"no inbound event {event_id}; see newsletter inbound list", code="not-found"
                )
            )
        if row["undone_at"] or not row["previous_status"] or row["subscriber_id"] is None:
            raise InputError(
                Problem(
                    f"inbound event {event_id} changed nobody; nothing to undo", code="bad-input"
                )
            )
        self.store.set_status(row["subscriber_id"], Status(row["previous_status"]),
                              f"undo of inbound event {event_id}", source="undo")  # fmt: skip
        self.conn.execute(
            "UPDATE inbound_events SET undone_at = ? WHERE id = ?", (db.now(), event_id)
        )
        return Applied(row["kind"], row["class"], row["status"], "", row["subscriber_id"],
                       row["issue"], row["matched_by"], f"undone: {row['previous_status']}",
                       row["reason"], event_id)  # fmt: skip


_SOURCE = {"bounce": "bounce", "complaint": "complaint", "unsubscribe": "mail"}


def feedback_for(store: SubscriberStore, config: Config, signer: Signer) -> Feedback:
    """The project's handler: its VERP key and unsubscribe tokens come from its secret."""

    def unsubscribe_token(token: str) -> tuple[str, str] | None:
        try:
            owner = signer.read_subscriber_token(token)
        except (TokenError, ValueError):
            return None
        subscriber = owner.find(store)
        return (subscriber.email, owner.context) if subscriber else None

    return Feedback(store, config, signer.subkey("verp"), unsubscribe_token)


def store_handler(config: Config, signer: Signer, source: str) -> Callable[[bytes], None]:
    """What a listener calls with each message: take it into the project's database, on a
    connection of its own (the listener's thread is not the caller's)."""
    path = config.database_location

    def handle(raw: bytes) -> None:
        with SubscriberStore.open(path) as store:
            feedback_for(store, config, signer).ingest(raw, source=source)

    return handle
