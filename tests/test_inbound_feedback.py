"""What comes back, applied: readers matched by token, Message-ID or address; the policy for
hard, soft and policy bounces, complaints, auto-replies and mail unsubscribes; undo; the
LMTP listener and the webhooks under `serve`."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from smtp_sink import free_port
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import Config, load_config
from newsletter.deliver import db
from newsletter.deliver.came_back import issue_health
from newsletter.deliver.feedback import Feedback, feedback_for, message_digest
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key
from newsletter.inbound.listener import listening
from newsletter.inbound.verp import delivery_token, verp_address
from newsletter.web.app import create_app

pytestmark = pytest.mark.usefixtures("each_database")

ISSUES = ["2026-10-01-one", "2026-10-08-two", "2026-10-15-three", "2026-10-22-four",
          "2026-10-29-five", "2026-11-05-six"]  # fmt: skip


@pytest.fixture
def config(project: Path) -> Config:
    return load_config()


@pytest.fixture
def signer(config: Config) -> Signer:
    return Signer(load_key(config.path(config.secret_file)))


@pytest.fixture
def store(config: Config) -> Iterator[SubscriberStore]:
    with SubscriberStore.open(config.database_location) as opened:
        yield opened


@pytest.fixture
def feedback(store: SubscriberStore, config: Config, signer: Signer) -> Feedback:
    return feedback_for(store, config, signer)


def _sent(store: SubscriberStore, subscriber_id: int, *issues: str) -> None:
    for day, issue in enumerate(issues):
        store.conn.execute(
            "INSERT INTO deliveries (issue, subscriber_id, status, updated_at)"
            " VALUES (?, ?, 'sent', ?) ON CONFLICT (issue, subscriber_id)"
            " DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            (issue, subscriber_id, f"{db.now()[:10]}T0{day}:00:00+00:00"),
        )


def _dsn(to: str, failed: str, status: str, diagnostic: str, action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) addressed to `to` (our VERP address)."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Delivery Status "
        "Notification (Failure)\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        'report-type=delivery-status; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        f"\r\nYour message could not be delivered.\r\n\r\n--b\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n"
        f"\r\nFinal-Recipient: rfc822; {failed}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--b--\r\n"
    ).encode()


def _verp(signer: Signer, issue: str, subscriber_id: int) -> str:
    token = delivery_token(signer.subkey("verp"), issue, subscriber_id)
    return verp_address(token, "bounce.example.org")


def test_hard_bounce_by_token_then_undo(
    store: SubscriberStore, feedback: Feedback, signer: Signer
) -> None:
    ann = store.add("ann@example.org")
    _sent(store, ann.id, ISSUES[0])
    raw = _dsn(_verp(signer, ISSUES[0], ann.id), "ann@example.org", "5.1.1",
               "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown")  # fmt: skip
    [applied] = feedback.ingest(raw, source="test")
    assert (applied.kind, applied.klass, applied.matched_by) == ("bounce", "hard", "token")
    assert applied.issue == ISSUES[0] and applied.action == "bounced"
    assert store.get("ann@example.org").status == Status.BOUNCED  # type: ignore[union-attr]
    assert applied.event_id is not None
    feedback.undo(applied.event_id)
    assert store.get("ann@example.org").status == Status.ACTIVE  # type: ignore[union-attr]
    stored = store.conn.execute("SELECT raw, undone_at FROM inbound_events").fetchone()
    assert bytes(stored["raw"]) == raw and stored["undone_at"]


def test_forged_token_matches_nobody(store: SubscriberStore, feedback: Feedback) -> None:
    ann = store.add("ann@example.org")
    _sent(store, ann.id, ISSUES[0])
    forged = delivery_token(b"not our key", ISSUES[0], ann.id)
    raw = _dsn(verp_address(forged, "bounce.example.org"), "someone@example.net", "5.1.1",
               "550 5.1.1 user unknown")  # fmt: skip
    [applied] = feedback.ingest(raw, source="test")
    assert applied.subscriber_id is None and applied.action.startswith("none")
    assert store.get("ann@example.org").status == Status.ACTIVE  # type: ignore[union-attr]


def test_policy_rejection_never_touches_the_reader(
    store: SubscriberStore, feedback: Feedback, signer: Signer
) -> None:
    bo = store.add("bo@example.org")
    _sent(store, bo.id, ISSUES[0])
    blocked = "550 5.7.1 Service unavailable; client host blocked using a DNS blocklist"
    raw = _dsn(_verp(signer, ISSUES[0], bo.id), "bo@example.org", "5.7.1", blocked)
    [applied] = feedback.ingest(raw, source="test")
    assert applied.klass == "policy" and applied.action.startswith("flagged")
    assert store.get("bo@example.org").status == Status.ACTIVE  # type: ignore[union-attr]


def test_soft_bounces_count_over_the_last_sends_and_reset_on_a_clean_one(
    store: SubscriberStore, feedback: Feedback, signer: Signer
) -> None:
    cy = store.add("cy@example.org")
    dee = store.add("dee@example.org")
    full = "452 4.2.2 The email account that you tried to reach is over quota"
    for reader in (cy, dee):
        _sent(store, reader.id, *ISSUES[:3])
    for issue in ISSUES[:3]:  # cy: three soft bounces in a row
        feedback.ingest(_dsn(_verp(signer, issue, cy.id), "cy@example.org", "4.2.2", full,
                             action="delayed"), source="test")  # fmt: skip
    assert store.get("cy@example.org").status == Status.BOUNCED  # type: ignore[union-attr]
    # dee: two soft bounces, a clean delivery, then one more: the count started again.
    for issue in (ISSUES[0], ISSUES[1]):
        feedback.ingest(_dsn(_verp(signer, issue, dee.id), "dee@example.org", "4.2.2", full,
                             action="delayed"), source="test")  # fmt: skip
    _sent(store, dee.id, ISSUES[3], ISSUES[4])
    feedback.ingest(_dsn(_verp(signer, ISSUES[4], dee.id), "dee@example.org", "4.2.2", full,
                         action="delayed"), source="test")  # fmt: skip
    assert store.get("dee@example.org").status == Status.ACTIVE  # type: ignore[union-attr]


def test_complaint_by_message_id_and_auto_reply(
    store: SubscriberStore, feedback: Feedback, config: Config
) -> None:
    eve = store.add("eve@example.org")
    _sent(store, eve.id, ISSUES[1])
    mid = f"<{ISSUES[1]}.{eve.id}.{message_digest(ISSUES[1], eve.email)}@{config.sender_domain}>"
    arf = (
        "From: feedback@isp.example\r\nTo: abuse@example.org\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; "
        'boundary="f"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n--f\r\n'
        "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n"
        "\r\n--f\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.org\r\n"
        f"To: eve@example.org\r\nMessage-ID: {mid}\r\nSubject: An issue\r\n\r\n--f--\r\n"
    ).encode()
    [applied] = feedback.ingest(arf, source="test")
    assert applied.kind == "complaint" and applied.matched_by in ("message-id", "address")
    assert store.get("eve@example.org").status == Status.COMPLAINED  # type: ignore[union-attr]
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "fay@example.org", "news@example.org", "Away"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am away until Monday.")
    fay = store.add("fay@example.org")
    _sent(store, fay.id, ISSUES[1])
    [auto] = feedback.ingest(reply.as_bytes(), source="test")
    assert auto.kind == "auto-reply" and auto.action.startswith("none")
    assert store.get("fay@example.org").status == Status.ACTIVE  # type: ignore[union-attr]


def test_mail_unsubscribe_needs_a_genuine_token(
    store: SubscriberStore, feedback: Feedback, signer: Signer
) -> None:
    gil = store.add("gil@example.org")
    genuine = signer.subscriber_token(gil.public_id, ISSUES[2])
    forged = Signer(b"forger").subscriber_token(gil.public_id, "x")
    for token, expected in ((genuine, True), (forged, False)):
        mail = EmailMessage()
        mail["From"], mail["To"] = "someone@example.net", "unsubscribe@example.org"
        mail["Subject"] = f"unsubscribe {token}"
        mail.set_content("")
        [applied] = feedback.ingest(mail.as_bytes(), source="test")
        assert applied.kind == "unsubscribe"
        assert (applied.action == "unsubscribed") is expected
    gone = store.get("gil@example.org")
    assert gone is not None and gone.status == Status.UNSUBSCRIBED
    assert store.history(gil.id)[-1]["source"] == "mail"


def _event(store: SubscriberStore, kind: str, klass: str, issue: str, reader: int) -> None:
    store.conn.execute(
        "INSERT INTO inbound_events (received_at, source, kind, class, issue, subscriber_id,"
        " action, decision) VALUES (?, 'test', ?, ?, ?, ?, 'x', '{}')",
        (db.now(), kind, klass, issue, reader),
    )


def test_pause_when_complaints_or_hard_bounces_pass_the_thresholds(
    store: SubscriberStore, config: Config
) -> None:
    readers = [store.add(f"r{i}@example.org") for i in range(200)]
    for reader in readers:
        _sent(store, reader.id, ISSUES[4], ISSUES[5])
    assert issue_health(store, ISSUES[5], config) is None
    for reader in readers[:10]:  # 10 of 200 = 5 %: at the threshold, not past it
        _event(store, "bounce", "hard", ISSUES[5], reader.id)
    assert issue_health(store, ISSUES[5], config) is None
    _event(store, "bounce", "hard", ISSUES[5], readers[10].id)
    assert "hard bounces" in (issue_health(store, ISSUES[5], config) or "")
    _event(store, "complaint", "", ISSUES[4], readers[0].id)  # 1 of 200 = 0.5 % > 0.1 %
    assert "complaints" in (issue_health(store, ISSUES[4], config) or "")


def test_import_dry_run_json_changes_nothing(
    runner: CliRunner, project: Path, store: SubscriberStore, signer: Signer
) -> None:
    folder = project / "returns"
    folder.mkdir()
    ann = store.add("ann@example.org")
    _sent(store, ann.id, ISSUES[0])
    (folder / "a.eml").write_bytes(_dsn(_verp(signer, ISSUES[0], ann.id), "ann@example.org",
                                        "5.1.1", "550 5.1.1 user unknown"))  # fmt: skip
    result = runner.invoke(app, ["inbound", "import", str(folder), "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["kind"] == "bounce" and record["recipients"][0]["class"] == "hard"
    assert record["file"] == "a.eml" and record["recipients"][0]["status"] == "5.1.1"
    assert store.get("ann@example.org").status == Status.ACTIVE  # type: ignore[union-attr]
    assert store.conn.execute("SELECT count(*) FROM inbound_events").fetchone()[0] == 0
    real = runner.invoke(app, ["inbound", "import", str(folder)])
    assert real.exit_code == 0 and "1 bounce" in real.stdout
    assert store.get("ann@example.org").status == Status.BOUNCED  # type: ignore[union-attr]
    listed = json.loads(runner.invoke(app, ["inbound", "list", "--json"]).stdout)
    assert listed[0]["action"] == "bounced"
    undone = runner.invoke(app, ["inbound", "undo", str(listed[0]["id"])])
    assert undone.exit_code == 0 and store.get("ann@example.org").status == Status.ACTIVE  # type: ignore[union-attr]
    assert runner.invoke(app, ["inbound", "undo", str(listed[0]["id"])]).exit_code == 2


def test_lmtp_listener_stores_what_it_acknowledges(
    store: SubscriberStore, config: Config, signer: Signer
) -> None:
    hal = store.add("hal@example.org")
    _sent(store, hal.id, ISSUES[0])
    path = config.database_location

    def handle(raw: bytes) -> None:
        with SubscriberStore.open(path) as own:
            feedback_for(own, config, signer).ingest(raw, source="lmtp")

    port = free_port()
    server = listening(handle, "127.0.0.1", port, lmtp=True)
    try:
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
            dsn = _dsn("x", "hal@example.org", "5.1.1", "550 5.1.1 no such user")
            client.sendmail("MAILER-DAEMON@mx.example.net", [_verp(signer, ISSUES[0], hal.id)], dsn)
    finally:
        server.stop()
    assert store.get("hal@example.org").status == Status.BOUNCED  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        listening(handle, "0.0.0.0", free_port(), lmtp=True)


def test_webhooks_under_serve_authenticate_and_apply(
    project: Path, config: Config, signer: Signer, store: SubscriberStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("NEWSLETTER_MAILGUN_SIGNING_KEY", "mg-key")
    ivy = store.add("ivy@example.org")
    _sent(store, ivy.id, ISSUES[0])
    mid = f"<{ISSUES[0]}.{ivy.id}.{message_digest(ISSUES[0], ivy.email)}@{config.sender_domain}>"
    clock = 1_800_000_000.0

    def call(key: str, token: str) -> bytes:
        signature = hmac.new(key.encode(), f"{int(clock)}{token}".encode(), hashlib.sha256)
        event = {"event": "failed", "severity": "permanent", "recipient": "ivy@example.org",
                 "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"},
                 "message": {"headers": {"message-id": mid}}}  # fmt: skip
        return json.dumps({"signature": {"timestamp": str(int(clock)), "token": token,
                                         "signature": signature.hexdigest()},
                           "event-data": event}).encode()  # fmt: skip

    app_ = create_app(config, signer, send_mail=lambda to, data: None, clock=lambda: clock)
    with serving(app_) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/webhooks/mailgun", content=call("forged", "a" * 50)).status_code == 403
        assert store.get("ivy@example.org").status == Status.ACTIVE  # type: ignore[union-attr]
        assert http.post("/webhooks/postmark", content=b"{}").status_code == 403  # no secret set
        assert http.post("/webhooks/nobody", content=b"{}").status_code == 404
        assert http.post("/webhooks/mailgun", content=call("mg-key", "b" * 50)).status_code == 200
    assert store.get("ivy@example.org").status == Status.BOUNCED  # type: ignore[union-attr]
    row = store.conn.execute("SELECT source, matched_by FROM inbound_events").fetchone()
    assert (row["source"], row["matched_by"]) == ("webhook:mailgun", "message-id")
