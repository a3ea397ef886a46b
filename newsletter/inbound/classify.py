"""Classify one inbound message: bounce, complaint, auto-reply, unsubscribe, or unclassified.

Pure functions over bytes. Complaints are feedback reports (RFC 5965), Microsoft's JMRP
reports and Amazon SES complaint notifications. Bounces are found by `failures` and each
failed recipient classed by the table in `rules`. Auto-replies (RFC 3834) are never bounces.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import HeaderParser
from typing import Any, Literal

from newsletter.inbound import failures as found
from newsletter.inbound.failures import Failure
from newsletter.inbound.parts import (
    addresses,
    all_text,
    header,
    human_text,
    outer_parts,
    returned_headers,
)
from newsletter.inbound.rules import Klass, judge
from newsletter.inbound.verp import HEADER, find_tokens, token_from_address

# flufl.bounce reads every line, attachments of the returned message included; a bounce says
# what failed near its start, so it is shown only that much of a large one.
_SCAN_LIMIT = 256_000

Kind = Literal["bounce", "complaint", "auto-reply", "unsubscribe", "unclassified"]


@dataclass(frozen=True)
class Recipient:
    """One failed recipient; for a complaint, the complaining reader (class "policy": not a
    dead address; the complaint itself is what counts) with the feedback type as diagnostic."""

    address: str
    status: str
    klass: Klass
    diagnostic: str


@dataclass(frozen=True)
class Decision:
    """What an inbound message is, about whom, and why."""

    kind: Kind
    recipients: tuple[Recipient, ...]
    reason: str
    token: str | None = None
    original_message_id: str | None = None


def decision_json(file: str, d: Decision) -> dict[str, Any]:
    """The `--dry-run --json` record of one message."""
    return {
        "file": file,
        "kind": d.kind,
        "recipients": [
            {"address": r.address, "status": r.status, "class": r.klass} for r in d.recipients
        ],
        "reason": d.reason,
    }


# --- complaints ------------------------------------------------------------------------------


def _complaint(msg: Message, originals: list[Message]) -> tuple[str, list[str]] | None:
    """(feedback type, complained-about addresses) of a complaint report, or None."""
    for part in outer_parts(msg):
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        fields = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(fields, Message):
            fields = HeaderParser().parsestr(str(payload).lstrip())
        feedback = header(fields, "Feedback-Type").lower() or "abuse"
        named = [found.field_address(str(v)) for v in fields.get_all("Original-Rcpt-To", [])]
        named = named or [
            found.field_address(str(v)) for v in fields.get_all("Removal-Recipient", [])
        ]
        return feedback, named or [a for o in originals for a in addresses(o, "To")]
    for original in originals:
        jmrp = addresses(original, "X-HmXmrOriginalRecipient")
        if jmrp:
            return "abuse", jmrp
    return None


# --- auto-replies and unsubscribes -----------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|answer|antwort)|auto:|out of (the )?office|"
    r"away (from|until)|on vacation|vacation|abwesen|absence|absent|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|risposta automatica|automatische antwort|fuera de la oficina|"
    r"i am (currently )?(away|out)|i'm (currently )?(away|out)|自動応答|不在)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (status|failure|failed|notification|has failed|problem)"
    r"|mail delivery|failure notice|non[- ]?delivery|could not be delivered|nondeliverable"
    r"|mail system error|rejected|bounce|not delivered|warning: could not send|mail error"
    r"|error sending|メールエラー|配信エラー|不達",
    re.IGNORECASE,
)
_DAEMON = re.compile(
    r"mailer-daemon|post_?master|mail delivery (system|subsystem)|\bndr\b", re.IGNORECASE
)
_BOUNCE_BODY = re.compile(
    r"could not be delivered|undeliverable|delivery (has )?failed|permanent (fatal )?error"
    r"|returned to sender|failed to deliver|unable to deliver|could not deliver|did not reach"
    r"|delivery to the following recipients? failed|invalid user address|error delivering"
    r"|trouble delivering|送信できませんでした|配信できませんでした",
    re.IGNORECASE,
)


def _auto_reply_signal(msg: Message) -> str:
    """Why `msg` is an auto-reply by its headers (RFC 3834 and common vendor ones), or ""."""
    if header(msg, "Auto-Submitted").lower().startswith("auto-replied"):
        return "Auto-Submitted: auto-replied (RFC 3834)"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation"):
        if msg.get(name) is not None:
            return f"it carries {name}"
    for name in ("Precedence", "X-Precedence"):
        if header(msg, name).lower() in ("auto_reply", "auto-reply"):
            return f"{name}: auto_reply"
    if _AUTO_SUBJECT.match(header(msg, "Subject")):
        return "its subject"
    return ""


def _looks_like_bounce(msg: Message, human: str = "") -> bool:
    """True when the subject, the sender or (given `human`) the opening words read as a
    delivery failure."""
    sender = header(msg, "From") + " " + header(msg, "Return-Path")
    return bool(
        _BOUNCE_SUBJECT.search(header(msg, "Subject"))
        or _DAEMON.search(sender)
        or _BOUNCE_BODY.search(" ".join(human[:2000].split()))
    )


_UNSUBSCRIBE_SUBJECT = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg)\s*:\s*)*unsubscribe\b(?:\s|%20)*([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?",
    re.IGNORECASE,
)
_SIGNED = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _unsubscribe(msg: Message) -> tuple[bool, str | None]:
    """(is a mail unsubscribe, its token from the Subject or from the To address's `+` part)."""
    subject = _UNSUBSCRIBE_SUBJECT.match(header(msg, "Subject"))
    if subject is None:
        return False, None
    to_token = None
    for address in addresses(msg, "To"):
        local = address.rpartition("@")[0]
        tail = local.rpartition("+")[2]
        if "+" in local and _SIGNED.fullmatch(tail):
            to_token = tail
    return True, subject.group(1) or to_token


# --- tokens and the original message ---------------------------------------------------------


def _find_token(msg: Message, originals: list[Message]) -> str | None:
    """Our delivery token: in the address the bounce came to, the original's headers or text."""
    for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"):
        for address in addresses(msg, name):
            if token := token_from_address(address):
                return token
    for original in originals:
        if value := header(original, HEADER):
            return value.lower()
        for address in addresses(original, "Return-Path"):
            if token := token_from_address(address):
                return token
    tokens = find_tokens(all_text(msg))
    return tokens[0] if tokens else None


def _original_message_id(msg: Message, originals: list[Message]) -> str | None:
    for original in originals:
        if value := header(original, "Message-ID"):
            return value
    body = all_text(msg)
    match = re.search(r"^Message-ID:\s*(<[^>\s]+>)", body, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


# --- bounces ---------------------------------------------------------------------------------


def _judged(failure: Failure, human: str, others: set[str]) -> tuple[Recipient, str]:
    """The recipient and reason of one failure, read with the bounce's words about it (all of
    them when it is the only recipient)."""
    words = failure.context or found.context(
        human.splitlines(), failure.address, others, failure.diagnostic
    )
    if len(others) == 1:
        words = f"{words}\n{human}"
    klass, reason = judge(failure.status, failure.diagnostic, failure.transient, words)
    status = failure.status or ("4.0.0" if failure.transient else "5.0.0")
    diagnostic = failure.diagnostic or " ".join(words.split())[:500]
    return Recipient(failure.address, status, klass, diagnostic), reason


def _bounce(failures: list[Failure], human: str) -> tuple[tuple[Recipient, ...], str]:
    """The judged recipients, and the reasons in one sentence that names no address (it may
    be logged; the addresses are in the recipients)."""
    others = {f.address.lower() for f in failures}
    judged = [_judged(f, human, others) for f in failures]
    return tuple(r for r, _ in judged), "; ".join(dict.fromkeys(reason for _, reason in judged))


def _addressed(failures: list[Failure], originals: list[Message]) -> list[Failure]:
    """Failures whose recipient is not an address (a file, a pipe) take the original's To."""
    to = list(dict.fromkeys(a for o in originals for a in addresses(o, "To")))
    fixed = []
    for failure in failures:
        if "@" in failure.address:
            fixed.append(failure)
        elif len(to) == 1:
            fixed.append(replace(failure, address=to[0]))
    return fixed


def _unnamed(msg: Message, originals: list[Message], human: str) -> list[Failure]:
    """A bounce that names no recipient: the returned original's To, judged by the whole text."""
    named = [a for o in originals for a in addresses(o, "To")]
    diagnostic = " ".join(human.split())[-500:]
    subject = header(msg, "Subject")
    transient = bool(re.search(r"delay|warning|will retry|temporar", subject, re.IGNORECASE))
    return [Failure(a, "", diagnostic, transient, human) for a in dict.fromkeys(named)]


def classify(raw: bytes) -> Decision:
    """What the inbound message `raw` is, about which recipients, and why."""
    msg = email.message_from_bytes(raw)
    originals = returned_headers(msg)
    human = human_text(msg)
    token = _find_token(msg, originals)
    original_id = _original_message_id(msg, originals)

    def decide(kind: Kind, recipients: tuple[Recipient, ...], reason: str) -> Decision:
        return Decision(kind, recipients, reason, token, original_id)

    complaint = _complaint(msg, originals)
    ses = found.ses_notification(msg)
    ses_kind = found.ses_kind(ses) if ses is not None else ""
    if complaint is None and ses is not None and ses_kind == "Complaint":
        items = (ses.get("complaint") or {}).get("complainedRecipients") or []
        feedback = str((ses.get("complaint") or {}).get("complaintFeedbackType") or "abuse")
        complaint = feedback, [str(i.get("emailAddress")) for i in items]
    if complaint is not None:
        feedback, named = complaint
        recipients = tuple(Recipient(a, "", "policy", feedback) for a in dict.fromkeys(named))
        return decide("complaint", recipients, f"a complaint (feedback report: {feedback})")

    if ses is not None and ses_kind != "Bounce":
        return decide("unclassified", (), f"an Amazon SES notification of type {ses_kind}")

    bounce_like = _looks_like_bounce(msg, human)
    is_dsn = found.is_dsn(msg)
    if ses is not None:
        failed = found.ses_failures(ses)
    else:
        failed = found.dsn_failures(msg) or (
            found.text_dsn_failures(msg) if bounce_like or is_dsn else []
        )
    if (
        not failed
        and is_dsn
        and not re.search(r"fail|undeliver|not\s+be\s+delivered", human, re.IGNORECASE)
    ):
        return decide("unclassified", (), "a delivery status notification that reports no failure")

    if not failed and not _looks_like_bounce(msg):  # by its headers: a person may write "failed"
        unsubscribe, unsubscribe_token = _unsubscribe(msg)
        if unsubscribe:
            reason = "a mail to the unsubscribe address"
            return Decision("unsubscribe", (), reason, unsubscribe_token, original_id)
        signal = _auto_reply_signal(msg)
        if signal:
            return decide("auto-reply", (), f"an automatic reply: {signal}")
    if not failed:
        head = msg if len(raw) <= _SCAN_LIMIT else email.message_from_bytes(raw[:_SCAN_LIMIT])
        failed = found.prose_failures(head, human, bounce_like or is_dsn)
    failed = _addressed(failed, originals)
    if not failed and (bounce_like or is_dsn):
        failed = _unnamed(msg, originals, human)
    if failed:
        return decide("bounce", *_bounce(failed, human))
    return decide("unclassified", (), "neither a bounce, a complaint nor an automatic reply")
