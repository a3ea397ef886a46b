"""Sending to a real SMTP server (aiosmtpd on 127.0.0.1): headers, links, faults, limits."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from smtp_sink import Sink, free_port, running_sink
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver import db
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key

pytestmark = pytest.mark.usefixtures("each_database")

Configure = Callable[..., Path]


def add_subscribers(project: Path, count: int, prefix: str = "reader") -> list[str]:
    store = SubscriberStore.open(project / "newsletter.db")
    emails = [f"{prefix}{i}@example.com" for i in range(count)]
    for i, email in enumerate(emails):
        store.add(email, first_name=f"Name{i}", last_name="Tester", tags=("even",) * (i % 2 == 0))
    return emails


def send(runner: CliRunner, example: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["send", str(example), "--yes", *args])
    return result.exit_code, result.stdout, result.stderr


def signer(project: Path) -> Signer:
    return Signer(load_key(project / ".newsletter" / "secret.key"))


def test_every_header_and_personal_links(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add_subscribers(project, 3)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        code, out, err = send(runner, example)
    assert code == 0, err
    assert "Sent 3," in out
    assert sorted(sink.per_recipient()) == emails
    for rcpt, message in sink.parsed():
        check_message(rcpt, message, emails.index(rcpt), project, example.name)


def check_message(rcpt: str, message: EmailMessage, index: int, project: Path, slug: str) -> None:
    assert message["From"] == "The Bright Side <hello@news.example.org>"
    assert message["To"] == f"Name{index} Tester <{rcpt}>"
    assert message["Reply-To"] == "editors@news.example.org"
    assert message["Subject"] == "France opens its doors to gay men fleeing Chechnya"
    assert message["Date"] and message["MIME-Version"] == "1.0"
    assert re.fullmatch(rf"<{slug}\.\d+\.[0-9a-f]{{12}}@news\.example\.org>", message["Message-ID"])
    assert message["List-Id"] == "The Bright Side <the-bright-side.news.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert https.startswith("https://news.example.org/unsubscribe/")
    assert mailto.startswith("mailto:hello@news.example.org?subject=unsubscribe%20")
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    token = https.rsplit("/", 1)[1]
    owner = signer(project).read_subscriber_token(token)
    public_id = SubscriberStore.open(project / "newsletter.db").get(rcpt).public_id
    assert (owner.public_id, owner.email, owner.context) == (public_id, None, slug)
    for part in (text.get_content(), html.get_content()):
        assert f"Hi Name{index}," in part
        assert https in part
        assert "{{" not in part


def test_forged_and_altered_tokens_are_refused(
    runner: CliRunner, example: Path, project: Path
) -> None:
    add_subscribers(project, 2)
    store = SubscriberStore.open(project / "newsletter.db")
    ids = [store.get(f"reader{i}@example.com").public_id for i in range(2)]
    real = signer(project).subscriber_token(ids[0], example.name)
    forged = Signer(b"not the key").subscriber_token(ids[1], example.name)
    body, mac = real.split(".")
    other = signer(project).subscriber_token(ids[1], example.name).split(".")[0]
    altered = ("B" if mac[0] == "A" else "A") + mac[1:]  # mac[:-2] + "AA" was mac 1 in 256
    for bad in (forged, f"{other}.{mac}", f"{body}.{altered}", "garbage"):
        result = runner.invoke(app, ["unsubscribe", f"https://news.example.org/unsubscribe/{bad}"])
        assert result.exit_code == 2, bad
        assert "token" in result.stderr
    assert store.get("reader1@example.com").status == Status.ACTIVE
    ok = runner.invoke(app, ["unsubscribe", f"https://news.example.org/unsubscribe/{real}"])
    assert ok.exit_code == 0, ok.stderr
    assert store.get("reader0@example.com").status == Status.UNSUBSCRIBED
    assert store.get("reader1@example.com").status == Status.ACTIVE


def test_faults_everyone_deliverable_gets_exactly_one(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add_subscribers(project, 60)
    tried: set[str] = set()
    dropped: set[str] = set()
    hard = {emails[i] for i in (5, 17, 33)}

    def refuse(address: str) -> str | None:
        if address in hard:
            return "550 5.1.1 No such user"
        if int(address[6:].split("@")[0]) % 10 == 3 and address not in tried:
            tried.add(address)
            return "451 4.3.0 Try again later"
        return None

    def drop(address: str) -> bool:
        if address.endswith(("7@example.com",)) and address not in dropped:
            dropped.add(address)
            return True
        return False

    sink = Sink(refuse=refuse, drop_mid_data=drop)
    with running_sink(sink) as port:
        smtp_project(port)
        code, out, err = send(runner, example)
    assert code == 0, err
    received = sink.per_recipient()
    assert set(received) == set(emails) - hard
    assert set(received.values()) == {1}
    assert len(tried) == 5 and len(dropped) == 5  # the faults happened (17 and 33 are hard)
    store = SubscriberStore.open(project / "newsletter.db")
    for address in hard:
        bounced = store.get(address)
        assert bounced.status == Status.BOUNCED
        change = store.history(bounced.id)[-1]
        assert change["source"] == "bounce" and "550" in change["reason"] and change["changed_at"]
    counts = Ledger(db.connect(project / "newsletter.db"), example.name).counts()
    assert counts == {"queued": 0, "sending": 0, "sent": 57, "deferred": 0, "failed": 3}
    assert "failed 3 (3 bounced)" in out


def test_persistent_4xx_is_deferred_then_retried_by_next_run(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add_subscribers(project, 5)
    busy = {emails[1]}
    sink = Sink(refuse=lambda a: "452 4.2.2 Mailbox full" if a in busy else None)
    with running_sink(sink) as port:
        smtp_project(port)
        code, out, _ = send(runner, example)
        assert code == 0 and "deferred 1" in out
        ledger = Ledger(db.connect(project / "newsletter.db"), example.name)
        problem = ledger.problems()[0]
        assert problem["status"] == "deferred" and problem["attempts"] == 3
        assert "452" in problem["last_reply"]
        busy.clear()
        code, out, _ = send(runner, example)
    assert code == 0 and "Sent 1," in out and "skipped 4 already sent" in out
    assert set(sink.per_recipient().values()) == {1} and len(sink.per_recipient()) == 5


def test_consecutive_failures_pause_the_send(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 80)
    sink = Sink(refuse=lambda a: "554 5.7.1 Relay access denied")
    with running_sink(sink) as port:
        smtp_project(port, connections=1)
        code, _, err = send(runner, example)
    assert code == 1
    assert "paused: 20 failures in a row" in err and "554" in err
    counts = Ledger(db.connect(project / "newsletter.db"), example.name).counts()
    assert 20 <= counts["failed"] <= 22  # what was in flight when it paused finishes
    assert counts["queued"] == 80 - counts["failed"]


def test_unreachable_server_is_one_line_exit_1(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 3)
    smtp_project(free_port())
    code, _, err = send(runner, example)
    assert code == 1
    assert err.count("\n") == 1 and "is unreachable" in err and "check host and port" in err
    counts = Ledger(db.connect(project / "newsletter.db"), example.name).counts()
    assert counts["sent"] == 0 and counts["sending"] == 0


def test_tls_error_is_one_line_exit_1(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 1)
    with running_sink(Sink()) as port:
        config = smtp_project(port)
        config.write_text(config.read_text().replace('security = "none"', 'security = "tls"'))
        code, _, err = send(runner, example)
    assert code == 1 and "TLS failed" in err and "Traceback" not in err


def test_login_refused_is_one_line_exit_1(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    add_subscribers(project, 1)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "s3cret-password")
    with running_sink(Sink()) as port:
        config = smtp_project(port)
        config.write_text(config.read_text().replace("timeout = 5", 'timeout = 5\nusername = "u"'))
        code, out, err = send(runner, example)
    assert code == 1 and "refused the login for 'u'" in err
    assert "s3cret-password" not in out + err


def test_missing_password_is_an_input_error(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)
    add_subscribers(project, 1)
    config = smtp_project(free_port())
    config.write_text(config.read_text().replace("timeout = 5", 'timeout = 5\nusername = "u"'))
    code, _, err = send(runner, example)
    assert code == 2 and "$NEWSLETTER_SMTP_PASSWORD is not set" in err


def test_test_send_goes_only_to_given_addresses_and_is_not_recorded(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 4)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        code, _, err = send(
            runner, example, "--test", "editor@example.org", "--test", "reader2@example.com"
        )
    assert code == 0, err
    parsed = dict(sink.parsed())
    assert set(parsed) == {"editor@example.org", "reader2@example.com"}
    assert parsed["reader2@example.com"]["Subject"].startswith("[TEST] France opens")
    assert "Hi Name2," in parsed["reader2@example.com"].get_body(("plain",)).get_content()
    assert "Hi friend," in parsed["editor@example.org"].get_body(("plain",)).get_content()
    assert Ledger(db.connect(project / "newsletter.db"), example.name).counts()["sent"] == 0


def test_dry_run_sends_and_records_nothing(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 7)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        code, out, _ = send(runner, example, "--dry-run")
    assert code == 0 and "would send 7 messages" in out
    assert sink.count == 0
    assert sum(Ledger(db.connect(project / "newsletter.db"), example.name).counts().values()) == 0


def test_tag_sends_to_a_segment(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add_subscribers(project, 6)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        code, _, err = send(runner, example, "--tag", "even")
    assert code == 0, err
    assert sorted(sink.per_recipient()) == emails[0::2]


def test_rate_limit_spaces_messages(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_subscribers(project, 6)
    with running_sink(Sink()) as port:
        smtp_project(port)
        started = time.monotonic()
        code, _, err = send(runner, example, "--rate", "10/s")
        elapsed = time.monotonic() - started
    assert code == 0, err
    assert elapsed >= 0.5  # 6 messages at 10/s: at least 5 intervals of 0.1 s


def test_bad_rate_is_an_input_error(runner: CliRunner, example: Path) -> None:
    code, _, err = send(runner, example, "--rate", "fast")
    assert code == 2 and "write it like 10/s" in err


def test_no_confirmation_without_a_terminal(
    runner: CliRunner, example: Path, project: Path
) -> None:
    add_subscribers(project, 1)
    result = runner.invoke(app, ["send", str(example)])
    assert result.exit_code == 2 and "add --yes" in result.stderr


def test_status_shows_counts_and_failures(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add_subscribers(project, 3)
    with running_sink(
        Sink(refuse=lambda a: "550 5.1.1 Unknown" if a == emails[0] else None)
    ) as port:
        smtp_project(port)
        send(runner, example)
    result = runner.invoke(app, ["status", str(example), "--json"])
    assert result.exit_code == 0
    import json

    data = json.loads(result.stdout)
    assert data["counts"]["sent"] == 2 and data["counts"]["failed"] == 1
    assert data["problems"][0]["email"] == emails[0]
    assert "550" in data["problems"][0]["last_reply"]


def test_header_injection_in_subject_is_refused(
    runner: CliRunner, write_issue: Callable[..., Path]
) -> None:
    folder = write_issue(
        front='subject: "Hello\\r\\nBcc: victim@example.com"\npreheader: "P"\n'
        'date: 2026-11-24\nlead:\n  title: "T"\n'
    )
    result = runner.invoke(app, ["send", str(folder), "--yes"])
    assert result.exit_code == 2
    assert "subject: must be a single line" in result.stderr


def test_header_injection_in_a_recipient_is_refused(example: Path, project: Path) -> None:
    from newsletter.compose.build import build_issue
    from newsletter.compose.issues import load_issue
    from newsletter.deliver.message import MessageFactory, Recipient
    from newsletter.errors import HeaderInjectionError

    config = load_config()
    factory = MessageFactory(build_issue(load_issue(example), config), config, Signer(b"k"))
    with pytest.raises(HeaderInjectionError):
        factory.render(Recipient("a@example.com", "Eve\r\nBcc: victim@example.com"))
    with pytest.raises(HeaderInjectionError):
        factory.render(Recipient("a@example.com\nBcc: victim@example.com"))


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make a test DKIM key")
def test_dkim_signature_verifies(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure, tmp_path: Path
) -> None:
    key = tmp_path / "dkim.key"  # outside the project folder
    subprocess.run([OPENSSL, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [OPENSSL, "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    add_subscribers(project, 2)
    sink = Sink()
    with running_sink(sink) as port:
        config = smtp_project(port)
        config.write_text(config.read_text() + f'\n[dkim]\nselector = "nl"\nkey_file = "{key}"\n')
        code, _, err = send(runner, example)
    assert code == 0, err
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nl._domainkey.news.example.org."
        return record

    for _, data in sink.messages:
        assert data.startswith(b"DKIM-Signature:")
        assert dkim.verify(data, dnsfunc=dns)
        head, body = data.split(b"\r\n\r\n", 1)
        assert b"Chechnya" in body
        tampered = head + b"\r\n\r\n" + body.replace(b"Chechnya", b"Chechnyb")
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_key_inside_the_project_is_refused(
    runner: CliRunner, example: Path, project: Path
) -> None:
    (project / "dkim.key").write_text("not a key")
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[dkim]\nselector = "nl"\nkey_file = "dkim.key"\n')
    result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 2
    assert "dkim.key_file" in result.stderr and "outside" in result.stderr


def test_two_relays_share_the_list_exactly_once(
    runner: CliRunner, example: Path, project: Path
) -> None:
    emails = add_subscribers(project, 40)
    first, second = Sink(), Sink()
    with running_sink(first) as port1, running_sink(second) as port2:
        config = project / "newsletter.toml"
        config.write_text(
            config.read_text()
            + '\n[sending]\ntransport = "smtp"\n'
            + "".join(
                f'\n[[smtp]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
                f'security = "none"\nconnections = 2\nrate = "{rate}"\n'
                for name, port, rate in (("relay", port1, "200/s"), ("backup", port2, "100/s"))
            )
        )
        result = runner.invoke(app, ["send", str(example), "--yes", "--json"])
    assert result.exit_code == 0, result.stderr
    import json

    summary = json.loads(result.stdout)
    assert summary["sent"] == 40 and summary["transport"] == "backup, relay"
    both = first.per_recipient() + second.per_recipient()
    assert sorted(both) == sorted(emails) and set(both.values()) == {1}
    assert first.count > 0 and second.count > 0
    servers = {
        row[0]
        for row in db.connect(project / "newsletter.db").execute("SELECT server FROM deliveries")
    }
    assert servers == {"relay", "backup"}


def test_signing_key_file_is_created_private_and_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    key_file = tmp_path / ".newsletter" / "secret.key"
    key = load_key(key_file)
    assert len(key) == 64 and key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".newsletter" / ".gitignore").read_text().strip().endswith("*")
    assert load_key(key_file) == key  # reused, not regenerated
    monkeypatch.setenv("NEWSLETTER_SECRET", "from the environment")
    assert load_key(key_file) == b"from the environment"


def test_lines_starting_with_a_dot_survive(project: Path) -> None:
    from newsletter.config import SmtpServer
    from newsletter.deliver.transports import SmtpTransport

    sink = Sink()
    data = b"Subject: dots\r\nTo: a@example.com\r\n\r\n.one\r\nmiddle\r\n..two\r\n.\r\nend\r\n"
    with running_sink(sink) as port:
        transport = SmtpTransport(SmtpServer(host="127.0.0.1", port=port, security="none"))
        transport.open()
        transport.send("from@example.com", "a@example.com", data, lambda: None)
        transport.close()
    [(_, received)] = sink.messages
    assert received.endswith(b".one\r\nmiddle\r\n..two\r\n.\r\nend\r\n")
