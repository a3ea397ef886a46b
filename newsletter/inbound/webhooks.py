"""Webhooks of the relays people use: Amazon SES (through SNS), Postmark, Mailgun, SendGrid.

Each function authenticates one call the way its relay documents, then turns its events into
the same `Decision`s that `classify` makes of a bounce message, classed by the same `rules`.
A call that fails authentication raises `WebhookRefused` and changes nothing:

    SES/SNS    the SNS message signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA)
               with the certificate at SigningCertURL, which must be https on an SNS host of
               amazonaws.com; the topic must be one the config names; subscription
               confirmations are confirmed by visiting their SubscribeURL
    Postmark   HTTP Basic credentials configured on the webhook
    Mailgun    HMAC-SHA256 of timestamp + token with the webhook signing key, fresh
               timestamp, each token used once
    SendGrid   the Signed Event Webhook: ECDSA P-256 over timestamp + body, fresh timestamp
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from newsletter.inbound.classify import Decision, Recipient
from newsletter.inbound.rules import judge
from newsletter.inbound.verp import HEADER

#: How old a signed call may be (seconds) before it is refused as a replay.
MAX_AGE = 300
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class WebhookRefused(Exception):
    """The call is not genuine (or not for us): nothing is done with it."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRefused(f"not JSON: {exc}") from None


def _failed(address: str, status: str, diagnostic: str, transient: bool) -> Recipient:
    status = status or (m.group(1) if (m := _STATUS.search(diagnostic)) else "")
    klass, reason = judge(status, diagnostic, transient)
    return Recipient(address.strip().lower(), status, klass, diagnostic or reason)


def _bounce(recipients: list[Recipient], why: str, token: str | None, mid: str | None) -> Decision:
    return Decision("bounce", tuple(recipients), why, token, mid)


# --- Amazon SES through SNS ----------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SNS_FIELDS["UnsubscribeConfirmation"] = _SNS_FIELDS["SubscriptionConfirmation"]


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs for a message of its type (AWS documents the order)."""
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise WebhookRefused(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in fields:
        if name in message and message[name] is not None:
            lines += [name, str(message[name])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def sns_host(host: str) -> bool:
    """True for an Amazon SNS host name (sns.<region>.amazonaws.com)."""
    return bool(_SNS_HOST.match(host))


def _verify_sns(message: Mapping[str, Any], fetch: Callable[[str], bytes]) -> None:
    url = str(message.get("SigningCertURL", ""))
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not sns_host(parts.hostname or "")
        or not (parts.path.endswith(".pem"))
    ):
        raise WebhookRefused("the signing certificate is not on an SNS host")
    version = str(message.get("SignatureVersion"))
    algorithm: hashes.HashAlgorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(
        version, hashes.SHA256()
    )
    if version not in ("1", "2"):
        raise WebhookRefused(f"unknown SNS signature version {version!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key = x509.load_pem_x509_certificate(fetch(url)).public_key()
    except (binascii.Error, ValueError) as exc:
        raise WebhookRefused(f"unreadable signature or certificate: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused("the signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise WebhookRefused("the SNS signature does not verify") from None


def _ses_token(mail: Mapping[str, Any]) -> str | None:
    for item in mail.get("headers", []) or []:
        if str(item.get("name", "")).lower() == HEADER.lower():
            return str(item.get("value", "")).strip() or None
    return None


def _ses(notification: Mapping[str, Any]) -> list[Decision]:
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail", {}) or {}
    token, mid = _ses_token(mail), mail.get("messageId")
    if kind == "Bounce":
        bounce = notification.get("bounce", {})
        transient = bounce.get("bounceType") != "Permanent"
        recipients = [
            _failed(
                r.get("emailAddress", ""),
                str(r.get("status", "") or ""),
                str(r.get("diagnosticCode", "") or ""),
                transient,
            )
            for r in bounce.get("bouncedRecipients", [])
        ]
        why = f"Amazon SES {bounce.get('bounceType')}/{bounce.get('bounceSubType')} bounce"
        return [_bounce(recipients, why, token, mid)]
    if kind == "Complaint":
        complaint = notification.get("complaint", {})
        complained = tuple(
            Recipient(str(r.get("emailAddress", "")).lower(), "", "policy", "complaint")
            for r in complaint.get("complainedRecipients", [])
        )
        feedback = complaint.get("complaintFeedbackType") or "abuse"
        if feedback == "not-spam":
            return []
        return [Decision("complaint", complained, f"Amazon SES complaint ({feedback})", token, mid)]
    return []


def ses(
    body: bytes,
    *,
    topics: frozenset[str],
    fetch: Callable[[str], bytes],
    confirm: Callable[[str], None],
) -> list[Decision]:
    """An SNS call carrying SES notifications: verified, a subscription confirmed."""
    message = _json(body)
    if not isinstance(message, dict):
        raise WebhookRefused("not an SNS message")
    if str(message.get("TopicArn")) not in topics:
        raise WebhookRefused("the SNS topic is not one the config names")
    _verify_sns(message, fetch)
    if message["Type"] == "SubscriptionConfirmation":
        confirm(str(message["SubscribeURL"]))
        return []
    if message["Type"] != "Notification":
        return []
    notification = _json(str(message.get("Message", "")).encode("utf-8"))
    return _ses(notification) if isinstance(notification, dict) else []


# --- Postmark ---------------------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_POSTMARK_POLICY = {"Blocked", "SpamNotification", "ContentRelated", "VirusNotification",
                    "DMARCPolicy", "ChallengeVerification"}  # fmt: skip
_POSTMARK_IGNORED = {"AutoResponder", "Subscribe", "OpenRelayTest", "InboundError"}


def _basic_ok(authorization: str, username: str, password: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{username}:{password}".encode())


def postmark(body: bytes, authorization: str, *, username: str, password: str) -> list[Decision]:
    """A Postmark bounce or spam-complaint webhook, authenticated with Basic credentials."""
    if not password or not _basic_ok(authorization, username, password):
        raise WebhookRefused("wrong or missing Basic credentials")
    event = _json(body)
    if not isinstance(event, dict):
        raise WebhookRefused("not a Postmark event")
    record, kind = event.get("RecordType"), str(event.get("Type", ""))
    address = str(event.get("Email", "") or event.get("Recipient", ""))
    metadata = event.get("Metadata") or {}
    token = metadata.get("delivery") if isinstance(metadata, dict) else None
    mid = event.get("MessageID")
    if record == "SpamComplaint" or kind == "SpamComplaint":
        recipient = Recipient(address.lower(), "", "policy", "complaint")
        return [Decision("complaint", (recipient,), "Postmark spam complaint", token, mid)]
    if record != "Bounce" or kind in _POSTMARK_IGNORED:
        return []
    if kind == "Unsubscribe":
        return [Decision("unsubscribe", (), "unsubscribed through Postmark", token, mid)]
    details = f"{event.get('Description', '')} {event.get('Details', '')}".strip()
    if kind in _POSTMARK_HARD:
        recipient = Recipient(address.lower(), "5.1.1", "hard", details or kind)
    elif kind in _POSTMARK_POLICY:
        recipient = Recipient(address.lower(), "5.7.1", "policy", details or kind)
    else:  # SoftBounce, Transient, DnsError, Unknown...: let the rules judge the words
        recipient = _failed(address, "", details, transient=kind != "Unknown")
    return [_bounce([recipient], f"Postmark {kind}", token, mid)]


# --- Mailgun ----------------------------------------------------------------------------------


class ReplayGuard:
    """Remembers recent tokens so that a captured call cannot be played again."""

    def __init__(self, size: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_use(self, token: str) -> bool:
        """True the first time a token is seen."""
        if token in self._seen:
            return False
        self._seen[token] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def mailgun(body: bytes, *, signing_key: str, now: float, replays: ReplayGuard) -> list[Decision]:
    """A Mailgun webhook (failed, complained, unsubscribed), its signature verified."""
    call = _json(body)
    signature = call.get("signature", {}) if isinstance(call, dict) else {}
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    if not signing_key or not hmac.compare_digest(
        expected.hexdigest(), str(signature.get("signature", ""))
    ):
        raise WebhookRefused("the Mailgun signature does not verify")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_AGE:
        raise WebhookRefused("the Mailgun call is too old")
    if not replays.first_use(token):
        raise WebhookRefused("the Mailgun call was already received")
    event = call.get("event-data", {}) or {}
    address = str(event.get("recipient", ""))
    variables = event.get("user-variables") or {}
    ours = variables.get("delivery") if isinstance(variables, dict) else None
    mid = ((event.get("message") or {}).get("headers") or {}).get("message-id")
    kind = event.get("event")
    if kind == "complained":
        recipient = Recipient(address.lower(), "", "policy", "complaint")
        return [Decision("complaint", (recipient,), "Mailgun complaint", ours, mid)]
    if kind == "unsubscribed":
        return [Decision("unsubscribe", (), "unsubscribed through Mailgun", ours, mid)]
    if kind != "failed":
        return []
    status = event.get("delivery-status") or {}
    diagnostic = " ".join(
        str(status.get(k, "") or "") for k in ("code", "message", "description")
    ).strip()
    recipient = _failed(address, str(status.get("enhanced-code", "") or ""), diagnostic,
                        transient=event.get("severity") != "permanent")  # fmt: skip
    return [_bounce([recipient], f"Mailgun {event.get('severity')} failure", ours, mid)]


# --- SendGrid ---------------------------------------------------------------------------------


def _sendgrid_key(public_key: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
    except (binascii.Error, ValueError) as exc:
        raise WebhookRefused(f"the configured SendGrid key is unreadable: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRefused("the configured SendGrid key is not an ECDSA key")
    return key


def sendgrid(
    body: bytes, signature: str, timestamp: str, *, public_key: str, now: float
) -> list[Decision]:
    """A SendGrid Signed Event Webhook batch (bounce, blocked, dropped, spam report...)."""
    key = _sendgrid_key(public_key)
    try:
        key.verify(base64.b64decode(signature), timestamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))  # fmt: skip
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRefused("the SendGrid signature does not verify") from None
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_AGE:
        raise WebhookRefused("the SendGrid call is too old")
    events = _json(body)
    if not isinstance(events, list):
        raise WebhookRefused("not a SendGrid event batch")
    decisions = []
    for event in events:
        if not isinstance(event, dict):
            continue
        address, kind = str(event.get("email", "")), event.get("event")
        ours, mid = event.get("delivery"), event.get("sg_message_id")
        if kind == "spamreport":
            recipient = Recipient(address.lower(), "", "policy", "complaint")
            decisions.append(Decision("complaint", (recipient,), "SendGrid spam report", ours, mid))
        elif kind in ("unsubscribe", "group_unsubscribe"):
            decisions.append(
                Decision("unsubscribe", (), "unsubscribed through SendGrid", ours, mid)
            )
        elif kind in ("bounce", "dropped", "deferred"):
            diagnostic = str(event.get("reason", "") or event.get("response", ""))
            status = str(event.get("status", "") or "")
            if event.get("type") == "blocked":  # a block is about the sender, never the reader
                recipient = Recipient(address.lower(), status or "5.7.1", "policy", diagnostic)
            else:
                recipient = _failed(address, status, diagnostic, transient=kind == "deferred")
            decisions.append(_bounce([recipient], f"SendGrid {kind}", ours, mid))
    return decisions
