"""VERP end to end: an issue sent through aiosmtpd with `[sending] bounce_domain`, one copy
bounced back to its Return-Path and taken in by `inbound import` (a Maildir), by the LMTP
listener (`inbound listen`, and `serve` with `[inbound] listen`) and by `inbound fetch` from a
real Dovecot; the send pausing on hard bounces; `status` showing what came back."""

from __future__ import annotations

import base64
import json
import mailbox
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from smtp_sink import Sink, free_port, running_sink
from test_inbound_sources import _counts, _fill, dovecot  # noqa: F401 (a fixture)
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.deliver.message import DkimKey, MessageFactory, Recipient
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.inbound.sources import ImapSettings
from newsletter.inbound.verp import HEADER, token_from_address, verify_token

pytestmark = pytest.mark.usefixtures("each_database")

BOUNCE_DOMAIN = "bounce.example.org"
CONFIG = """
[sending]
transport = "smtp"
bounce_domain = "{bounce_domain}"
retry_delay = 0.05

[[smtp]]
name = "sink"
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5
connections = 2

[inbound]
pause_min_sent = 5
listen_port = {listen_port}
"""


@dataclass(frozen=True)
class Copy:
    """One copy as the relay got it: envelope sender, recipient, bytes."""

    sender: str
    recipient: str
    data: bytes


@dataclass
class Sent:
    """A project that sent an issue through the sink."""

    project: Path
    slug: str
    copies: dict[str, Copy]
    listen_port: int
    sink: Sink

    def store(self) -> SubscriberStore:
        return SubscriberStore.open(self.project / "newsletter.db")

    def status_of(self, email: str) -> Status:
        with self.store() as store:
            found = store.get(email)
            assert found is not None
            return found.status

    def events(self) -> list[dict[str, object]]:
        with self.store() as store:
            rows = store.conn.execute(
                "SELECT kind, class, issue, subscriber_id, matched_by, source FROM inbound_events"
                " ORDER BY id"
            )
            return [dict(row) for row in rows]


def _send(runner: CliRunner, example: Path, *args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["send", str(example), "--yes", "--json", *args])
    return result.exit_code, json.loads(result.stdout or "{}"), result.stderr


@pytest.fixture
def sent(runner: CliRunner, project: Path, example: Path) -> Iterator[Sent]:
    """Six readers (three tagged `first`), the example issue sent to `first` through aiosmtpd."""
    sink = Sink()
    with running_sink(sink) as port:
        listen_port = free_port()
        config = project / "newsletter.toml"
        config.write_text(config.read_text() + CONFIG.format(
            bounce_domain=BOUNCE_DOMAIN, port=port, listen_port=listen_port))  # fmt: skip
        with SubscriberStore.open(project / "newsletter.db") as store:
            for i in range(6):
                store.add(f"reader{i}@example.com", first_name=f"R{i}",
                          tags=("first",) if i < 3 else ())  # fmt: skip
        code, report, err = _send(runner, example, "--tag", "first")
        assert code == 0, err
        assert report["sent"] == 3
        with sink.lock:  # one recipient per message: an envelope per copy, in order
            copies = {
                rcpt: Copy(sender, rcpt, data)
                for (sender, _), (rcpt, data) in zip(sink.envelopes, sink.messages, strict=True)
            }
        yield Sent(project, example.name, copies, listen_port, sink)


def _dsn(copy: Copy, failed: str, status: str = "5.1.1", diagnostic: str = "") -> bytes:
    """What the receiving MTA sends back to the copy's Return-Path: an RFC 3464 report with
    the original headers."""
    headers = copy.data.split(b"\r\n\r\n", 1)[0]
    diagnostic = diagnostic or f"550 {status} <{failed}>: Recipient address rejected: User unknown"
    return (
        (
            f"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
            f"To: {copy.sender}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
            ' boundary="dsn"\r\n\r\n--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not'
            " be delivered to one or more recipients.\r\n\r\n--dsn\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.com\r\n\r\n"
            f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--dsn\r\n"
            "Content-Type: text/rfc822-headers\r\n\r\n"
        ).encode()
        + headers
        + b"\r\n\r\n--dsn--\r\n"
    )


def _forged(copy: Copy) -> bytes:
    """A bounce to the copy's VERP address with one letter of its token changed, about an
    address that is not on the list, without the original headers."""
    token = token_from_address(copy.sender)
    assert token is not None
    altered = token[:-1] + ("a" if token[-1] != "a" else "b")
    fake = Copy(copy.sender.replace(token, altered), copy.recipient, b"")
    return _dsn(fake, "stranger@example.net").replace(b"Content-Type: text/rfc822-headers", b"")


def test_each_copy_has_its_verp_sender_and_delivery_header(sent: Sent, project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    key = signer_for(config).subkey("verp")
    with sent.store() as store:
        ids = {s.email: s.id for s in store.iter()}
    assert len(sent.copies) == 3
    for copy in sent.copies.values():
        local, _, domain = copy.sender.partition("@")
        token = token_from_address(copy.sender)
        assert domain == BOUNCE_DOMAIN and local == f"bounces+{token}"
        assert len(local) <= 64
        message = message_from_bytes(copy.data, policy=policy.default)
        assert message[HEADER] == token
        delivery = verify_token(key, str(token))
        assert delivery is not None and delivery.subscriber_id == ids[copy.recipient]
        assert delivery.is_for(sent.slug)


def test_test_copies_and_the_outbox(sent: Sent, runner: CliRunner, example: Path) -> None:
    result = runner.invoke(app, ["send", str(example), "--test", "me@example.net", "--json"])
    assert result.exit_code == 0, result.stderr
    sender, _ = sent.sink.envelopes[-1]
    rcpt, data = sent.sink.messages[-1]
    assert (rcpt, sender) == ("me@example.net", f"bounces@{BOUNCE_DOMAIN}")  # names nobody
    assert HEADER.encode() not in data
    code, report, err = _send(runner, example, "--transport", "outbox")
    assert code == 0 and report["sent"] == 3, err
    key = signer_for(load_config(sent.project / "newsletter.toml")).subkey("verp")
    with sent.store() as store:
        ids = {s.email: s.id for s in store.iter()}
    for path in (sent.project / "outbox" / sent.slug / "new").iterdir():
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        token = message[HEADER]
        assert message["Return-Path"] == f"<bounces+{token}@{BOUNCE_DOMAIN}>"
        delivery = verify_token(key, token)
        assert delivery is not None
        assert delivery.subscriber_id == ids[message["To"].addresses[0].addr_spec]


def test_dkim_still_verifies_with_the_delivery_header(sent: Sent, example: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = load_config(sent.project / "newsletter.toml")
    signing = DkimKey("nl", config.sender_domain, pem)
    factory = MessageFactory(build_issue(load_issue(example), config), config,
                             signer_for(config), dkim_key=signing)  # fmt: skip
    outgoing = factory.render(Recipient("reader0@example.com", "R0", subscriber_id=7))
    assert outgoing.sender.startswith("bounces+") and HEADER.encode() in outgoing.data
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(outgoing.data, dnsfunc=lambda name, timeout=5: record)


def test_a_bounce_through_import_and_the_listener_marks_the_right_reader(
    sent: Sent, runner: CliRunner
) -> None:
    first, second, third = (sent.copies[f"reader{i}@example.com"] for i in range(3))
    # 1. `inbound import` of a Maildir holding the bounce of the first copy and a forgery.
    box = mailbox.Maildir(sent.project / "returns", create=True)
    box.add(_dsn(first, first.recipient))
    box.add(_forged(second))
    box.close()
    result = runner.invoke(app, ["inbound", "import", str(sent.project / "returns")])
    assert result.exit_code == 0, result.stderr
    assert sent.status_of(first.recipient) == Status.BOUNCED
    assert sent.status_of(second.recipient) == Status.ACTIVE
    # 2. `inbound listen`, a process of its own, given the second copy's bounce over LMTP.
    listener = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "inbound", "listen"], cwd=sent.project,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(sent.listen_port, listener)
        with smtplib.LMTP("127.0.0.1", sent.listen_port, timeout=10) as client:
            client.sendmail("", [second.sender], _dsn(second, second.recipient))
            refused = client.sendmail("", [third.sender], _forged(third))
        assert refused == {}
    finally:
        _stop(listener)
    assert sent.status_of(second.recipient) == Status.BOUNCED
    assert sent.status_of(third.recipient) == Status.ACTIVE  # the forgery changed nobody
    for i in range(3, 6):
        assert sent.status_of(f"reader{i}@example.com") == Status.ACTIVE
    events = sent.events()
    assert [(e["source"], e["matched_by"], e["issue"], e["class"]) for e in events] == [
        ("file:returns", "token", sent.slug, "hard"),
        ("file:returns", "", "", "hard"),
        ("lmtp", "token", sent.slug, "hard"),
        ("lmtp", "", "", "hard"),
    ]
    with sent.store() as store:
        ids = [store.get(c.recipient).id for c in (first, second)]  # type: ignore[union-attr]
    assert [e["subscriber_id"] for e in events] == [ids[0], None, ids[1], None]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            pytest.fail(f"the listener ended: {process.stderr.read().decode()[-800:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listened on port {port}")


def _stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then its stderr; killed if it does not end within 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=10)
        pytest.fail("the process did not stop on SIGTERM")
    return err.decode(errors="replace")


def test_serve_runs_the_listener_with_inbound_listen(sent: Sent) -> None:
    config = sent.project / "newsletter.toml"
    config.write_text(config.read_text().replace("[inbound]\n", "[inbound]\nlisten = true\n"))
    copy = sent.copies["reader1@example.com"]
    web_port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(web_port), "--no-worker"],
        cwd=sent.project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(sent.listen_port, server)
        with smtplib.LMTP("127.0.0.1", sent.listen_port, timeout=10) as client:
            client.sendmail("", [copy.sender], _dsn(copy, copy.recipient))
    finally:
        err = _stop(server)
    assert f"Listening for LMTP on 127.0.0.1:{sent.listen_port}" in err
    assert sent.status_of(copy.recipient) == Status.BOUNCED
    assert [e["source"] for e in sent.events()] == ["lmtp"]


@pytest.mark.sqlite_only  # a taken port, not the database
def test_a_taken_port_is_one_clear_error(sent: Sent, runner: CliRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", sent.listen_port))
        taken.listen()
        result = runner.invoke(app, ["inbound", "listen"])
    assert result.exit_code == 2
    assert "inbound.listen_port" in result.stderr and "Traceback" not in result.output


def test_imap_round_trip_moves_and_deletes_nothing(
    sent: Sent, runner: CliRunner, dovecot: ImapSettings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    copy = sent.copies["reader2@example.com"]
    other = (
        b"From: someone@example.net\r\nTo: bounces@bounce.example.org\r\nSubject: hi\r\n\r\nhi\r\n"
    )
    vacation = (
        b"From: reader0@example.com\r\nTo: " + sent.copies["reader0@example.com"].sender.encode()
        + b"\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack soon.\r\n"
    )  # fmt: skip
    _fill(dovecot, _dsn(copy, copy.recipient), other, vacation)
    config = sent.project / "newsletter.toml"
    config.write_text(config.read_text().replace("[inbound]\n", (
        f'[inbound]\nimap_host = "127.0.0.1"\nimap_port = {dovecot.port}\nimap_tls = false\n'
        f'imap_username = "{dovecot.username}"\n')))  # fmt: skip
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", dovecot.password)
    result = runner.invoke(app, ["inbound", "fetch", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"auto-reply": 1, "bounce": 1, "unclassified": 1}
    assert sent.status_of(copy.recipient) == Status.BOUNCED
    assert sent.status_of("reader0@example.com") == Status.ACTIVE  # a vacation reply
    assert _counts(dovecot) == {"INBOX": 0, dovecot.processed: 2, dovecot.unrecognised: 1}
    [bounce] = [e for e in sent.events() if e["kind"] == "bounce"]
    assert (bounce["issue"], bounce["matched_by"]) == (sent.slug, "token")


def test_the_send_pauses_past_the_hard_bounce_rate_and_status_shows_what_came_back(
    sent: Sent, runner: CliRunner, example: Path
) -> None:
    box = mailbox.Maildir(sent.project / "returns", create=True)
    first, second = sent.copies["reader0@example.com"], sent.copies["reader1@example.com"]
    box.add(_dsn(first, first.recipient))
    blocked = "550 5.7.1 Service unavailable; client host blocked using a DNS blocklist"
    box.add(_dsn(second, second.recipient, "5.7.1", blocked))
    box.close()
    assert runner.invoke(app, ["inbound", "import", str(sent.project / "returns")]).exit_code == 0
    status = runner.invoke(app, ["status", str(example), "--json"])
    assert status.exit_code == 0, status.stderr
    assert json.loads(status.stdout)["came_back"] == {
        "hard_bounces": 1, "soft_bounces": 0, "complaints": 0, "policy_rejections": 1,
        "mail_unsubscribes": 0,
    }  # fmt: skip
    text = runner.invoke(app, ["status", str(example)]).stdout
    assert "Came back: hard bounces 1, soft bounces 0, complaints 0, policy rejections 1" in text
    # Not yet: 3 copies sent, fewer than pause_min_sent = 5. Two more readers get it...
    with SubscriberStore.open(sent.project / "newsletter.db") as store:
        for i in (3, 4):
            store.tag(f"reader{i}@example.com", ["first"])
    code, report, err = _send(runner, example, "--tag", "first")
    assert code == 0 and report["sent"] == 2, err
    # ...and with 5 sent and 1 hard bounce (20 % > 5 %), the send to the rest pauses at once.
    code, report, err = _send(runner, example)
    assert code == 1, err
    assert report["sent"] == 0 and "1 hard bounces for 5 copies" in str(report["paused"])
    assert "pause_hard_bounce_rate" in str(report["paused"])
    assert report["resume"] and "newsletter send" in str(report["resume"])
    code, _, err = _send_text(runner, example)
    assert code == 1 and "paused: 1 hard bounces" in err and "To resume, run:" in err


def _send_text(runner: CliRunner, example: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["send", str(example), "--yes"])
    return result.exit_code, result.stdout, result.stderr
