"""Relay webhooks: each authenticated as its relay documents; forged calls change nothing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.inbound import webhooks
from newsletter.inbound.webhooks import ReplayGuard, WebhookRefused

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1))
        .not_valid_after(dt.datetime(2040, 1, 1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _sns(key: rsa.RSAPrivateKey, kind: str, version: str = "2", **fields: str) -> dict[str, str]:
    message = {"Type": kind, "MessageId": "m-1", "TopicArn": TOPIC,
               "Timestamp": "2026-11-29T10:00:00.000Z", "SignatureVersion": version,
               "SigningCertURL": CERT_URL, **fields}  # fmt: skip
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = webhooks.sns_string_to_sign(message)
    message["Signature"] = base64.b64encode(key.sign(signed, padding.PKCS1v15(), digest)).decode()
    return message


def _ses_call(key: rsa.RSAPrivateKey, notification: dict[str, object], **kw: str) -> bytes:
    return json.dumps(_sns(key, "Notification", Message=json.dumps(notification), **kw)).encode()


def _ses(body: bytes, pem: bytes, confirmed: list[str] | None = None) -> list[webhooks.Decision]:
    seen = confirmed if confirmed is not None else []
    return webhooks.ses(body, topics=frozenset({TOPIC}), fetch=lambda url: pem,
                        confirm=seen.append)  # fmt: skip


SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "gone@example.org",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
    },
    "mail": {"messageId": "ses-1", "headers": [{"name": "X-Newsletter-Delivery", "value": "tok"}]},
}


def test_ses_bounce_complaint_and_confirmation(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    [bounce] = _ses(_ses_call(key, SES_BOUNCE), pem)
    assert bounce.kind == "bounce" and bounce.token == "tok"
    assert bounce.recipients[0].klass == "hard" and bounce.recipients[0].status == "5.1.1"
    transient = json.loads(json.dumps(SES_BOUNCE))
    transient["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
    transient["bounce"]["bouncedRecipients"][0].update(
        status="4.2.2", diagnosticCode="smtp; 452 4.2.2 mailbox full"
    )
    assert _ses(_ses_call(key, transient, version="1"), pem)[0].recipients[0].klass == "soft"
    complaint = {"notificationType": "Complaint", "mail": {"messageId": "ses-2"},
                 "complaint": {"complainedRecipients": [{"emailAddress": "Ann@example.org"}],
                               "complaintFeedbackType": "abuse"}}  # fmt: skip
    [decision] = _ses(_ses_call(key, complaint), pem)
    assert decision.kind == "complaint" and decision.recipients[0].address == "ann@example.org"
    confirmed: list[str] = []
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
    call = _sns(key, "SubscriptionConfirmation", Message="confirm", SubscribeURL=url, Token="t")
    assert _ses(json.dumps(call).encode(), pem, confirmed) == [] and confirmed == [url]


def test_ses_forgeries_are_refused(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    good = json.loads(_ses_call(key, SES_BOUNCE))
    altered = dict(good, Message=good["Message"].replace("gone@", "someone-else@"))
    elsewhere = dict(good, SigningCertURL="https://sns.evil.example/cert.pem")
    lookalike = dict(good, SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.example/c.pem")
    plain = dict(good, SigningCertURL=CERT_URL.replace("https", "http"))
    other_topic = _sns(key, "Notification", Message="{}", TopicArn="arn:aws:sns:x:1:other")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_signer = json.loads(_ses_call(other_key, SES_BOUNCE))
    for forged in (altered, elsewhere, lookalike, plain, other_topic, wrong_signer):
        with pytest.raises(WebhookRefused):
            _ses(json.dumps(forged).encode(), pem)
    with pytest.raises(WebhookRefused):
        _ses(b"not json", pem)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_postmark_types_and_credentials() -> None:
    def call(kind: str, details: str = "", record: str = "Bounce") -> list[webhooks.Decision]:
        body = json.dumps({"RecordType": record, "Type": kind, "Email": "X@example.org",
                           "MessageID": "pm-1", "Details": details}).encode()  # fmt: skip
        return webhooks.postmark(body, _basic("hooks", "s3cret"), username="hooks",
                                 password="s3cret")  # fmt: skip

    assert call("HardBounce")[0].recipients[0].klass == "hard"
    assert call("Blocked", "550 5.7.1 blocked by policy")[0].recipients[0].klass == "policy"
    soft = call("SoftBounce", "452 4.2.2 mailbox full")[0].recipients[0]
    assert soft.klass == "soft" and soft.address == "x@example.org"
    assert call("SpamComplaint", record="SpamComplaint")[0].kind == "complaint"
    assert call("AutoResponder") == []
    for wrong in (_basic("hooks", "guess"), "", "Bearer s3cret", "Basic !!!"):
        with pytest.raises(WebhookRefused):
            webhooks.postmark(b"{}", wrong, username="hooks", password="s3cret")
    with pytest.raises(WebhookRefused):  # no password configured: nothing is accepted
        webhooks.postmark(b"{}", _basic("hooks", ""), username="hooks", password="")


def _mailgun(event: dict[str, object], key: str = "mg-key", when: int = NOW,
             token: str = "t" * 50) -> bytes:  # fmt: skip
    signature = hmac.new(key.encode(), f"{when}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": str(when), "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def test_mailgun_signature_freshness_and_replays() -> None:
    failed = {"event": "failed", "severity": "permanent", "recipient": "gone@example.org",
              "delivery-status": {"code": 550, "message": "5.1.1 The email account that you "
                                  "tried to reach does not exist"},
              "message": {"headers": {"message-id": "<a.1.b@news.example.org>"}}}  # fmt: skip
    guard = ReplayGuard()
    [decision] = webhooks.mailgun(_mailgun(failed), signing_key="mg-key", now=NOW, replays=guard)
    assert decision.recipients[0].klass == "hard"
    assert decision.original_message_id == "<a.1.b@news.example.org>"
    with pytest.raises(WebhookRefused):  # the same call again
        webhooks.mailgun(_mailgun(failed), signing_key="mg-key", now=NOW, replays=guard)
    for forged in (_mailgun(failed, key="other", token="u" * 50),
                   _mailgun(failed, when=NOW - 3600, token="v" * 50)):  # fmt: skip
        with pytest.raises(WebhookRefused):
            webhooks.mailgun(forged, signing_key="mg-key", now=NOW, replays=guard)
    temporary = dict(
        failed,
        severity="temporary",
        **{"delivery-status": {"code": 452, "message": "mailbox full"}},
    )
    body = _mailgun(temporary, token="w" * 50)
    soft = webhooks.mailgun(body, signing_key="mg-key", now=NOW, replays=guard)
    assert soft[0].recipients[0].klass == "soft"
    complained = _mailgun({"event": "complained", "recipient": "a@example.org"}, token="x" * 50)
    kinds = webhooks.mailgun(complained, signing_key="mg-key", now=NOW, replays=guard)
    assert kinds[0].kind == "complaint"


def test_sendgrid_signed_event_webhook() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    events = [
        {"email": "gone@example.org", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 user unknown", "sg_message_id": "sg-1"},
        {"email": "b@example.org", "event": "bounce", "type": "blocked", "status": "5.7.1",
         "reason": "550 5.7.1 IP listed at a blocklist", "sg_message_id": "sg-2"},
        {"email": "c@example.org", "event": "spamreport", "sg_message_id": "sg-3"},
        {"email": "d@example.org", "event": "delivered", "sg_message_id": "sg-4"},
    ]  # fmt: skip
    body, stamp = json.dumps(events).encode(), str(NOW)
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256())))
    decisions = webhooks.sendgrid(body, signature.decode(), stamp, public_key=public, now=NOW)
    assert [d.kind for d in decisions] == ["bounce", "bounce", "complaint"]
    assert [d.recipients[0].klass for d in decisions[:2]] == ["hard", "policy"]
    for bad_body, bad_stamp in ((body.replace(b"gone", b"dead"), stamp), (body, str(NOW + 1))):
        with pytest.raises(WebhookRefused):
            webhooks.sendgrid(bad_body, signature.decode(), bad_stamp, public_key=public, now=NOW)
    old = str(NOW - 3600)
    signed_old = base64.b64encode(key.sign(old.encode() + body, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(WebhookRefused):
        webhooks.sendgrid(body, signed_old.decode(), old, public_key=public, now=NOW)


def test_sns_subscription_urls_must_be_on_sns_hosts() -> None:
    assert webhooks.sns_host("sns.eu-west-1.amazonaws.com")
    assert not webhooks.sns_host("sns.eu-west-1.amazonaws.com.evil.example")
    assert not webhooks.sns_host("evil.example")
