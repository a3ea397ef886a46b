"""Internationalised addresses (IDNA domains, SMTPUTF8 local parts) and header line lengths."""

from __future__ import annotations

import email
from collections.abc import Callable
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import idna
import nacl.encoding
import nacl.signing
import pytest
from smtp_sink import Sink, running_sink
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import make_environment
from newsletter.config import load_config
from newsletter.deliver import db
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.message import DkimKey, MessageFactory, Recipient
from newsletter.deliver.notices import confirmation_email
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.deliver.transports import NO_SMTPUTF8, MaildirTransport, Unsendable
from newsletter.web.app import outbox_mailer

pytestmark = pytest.mark.usefixtures("each_database")

Configure = Callable[..., Path]

# (address as email-validator normalises it, first name, last name); the domains in Unicode
READERS = [
    ("élodie@exemple.fr", "Élodie", "Dupré"),
    ("søren@eksempel.dk", "Søren", "Kierkegård"),
    ("δοκιμή@παράδειγμα.gr", "Σωκράτης", "Παπαδόπουλος"),
    ("用户@例子.中国", "小龙", "李"),
    ("ascii.reader@bücher.de", "Ann", "Reader"),
    ("plain@example.com", "Plain", "Reader"),
]
NEEDS_SMTPUTF8 = {address for address, _, _ in READERS if not address.split("@")[0].isascii()}


def parse(data: bytes) -> EmailMessage:
    """A message with UTF-8 headers (RFC 6532), as a receiving client reads it."""
    message = email.message_from_string(data.decode("utf-8"), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def unicode_address(wire: str) -> str:
    """The address with its IDNA domain turned back into Unicode."""
    local, _, domain = wire.rpartition("@")
    return f"{local}@{idna.decode(domain)}"


def to_header(data: bytes) -> tuple[str, str]:
    """The To header's display name and address, decoded by the letter of RFC 2047 (Python's
    address parser puts a space between adjacent encoded words, which RFC 2047 6.2 drops)."""
    raw = email.message_from_string(data.decode(), policy=policy.compat32)["To"]
    phrase, _, address = raw.rpartition("<")
    decoded = str(make_header(decode_header(phrase.strip())))
    return parseaddr(f"{decoded} <x@y>")[0], unicode_address(address.rstrip(">"))


def add_readers(project: Path) -> None:
    store = SubscriberStore.open(project / "newsletter.db")
    for address, first, last in READERS:
        store.add(address, first_name=first, last_name=last)


def check_received(sink: Sink, expected: list[tuple[str, str, str]]) -> None:
    """Every expected reader got one copy: envelope in IDNA, To header parsing back intact."""
    received = {unicode_address(rcpt): parse(data) for rcpt, data in sink.messages}
    assert sorted(received) == sorted(address for address, _, _ in expected)
    assert len(sink.messages) == len(expected)
    for rcpt, _ in sink.messages:
        assert rcpt.rpartition("@")[2].isascii()  # the domain in IDNA on the wire
    for (mail_from, options), (rcpt, _) in zip(sink.envelopes, sink.messages, strict=True):
        assert mail_from == "hello@news.example.org"
        assert ("SMTPUTF8" in options) == (unicode_address(rcpt) in NEEDS_SMTPUTF8)
    for address, first, last in expected:
        [to] = received[address]["To"].addresses
        assert unicode_address(to.addr_spec) == address
        assert to.display_name == f"{first} {last}"
        body = received[address].get_body(("plain",))
        assert body is not None and f"Hi {first}," in body.get_content()


def test_relay_with_smtputf8_gets_every_address(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_readers(project)
    sink = Sink(smtputf8=True)
    with running_sink(sink) as port:
        smtp_project(port)
        result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    check_received(sink, READERS)


def test_relay_without_smtputf8_fails_only_those_copies(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    add_readers(project)
    sink = Sink(smtputf8=False)
    with running_sink(sink) as port:
        smtp_project(port)
        result = runner.invoke(app, ["send", str(example), "--yes", "--json"])
    assert result.exit_code == 0, result.stderr
    deliverable = [reader for reader in READERS if reader[0] not in NEEDS_SMTPUTF8]
    check_received(sink, deliverable)
    ledger = Ledger(db.connect(project / "newsletter.db"), example.name)
    problems = {row["email"]: row for row in ledger.problems()}
    assert set(problems) == NEEDS_SMTPUTF8
    for row in problems.values():
        assert (row["status"], row["last_reply"]) == ("failed", NO_SMTPUTF8)
    store = SubscriberStore.open(project / "newsletter.db")
    for address in NEEDS_SMTPUTF8:  # not a bounce: the address is fine, the relay is not
        reader = store.get(address)
        assert reader is not None and reader.status == Status.ACTIVE


def test_import_then_send_keeps_every_script_intact(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    people = project / "people.csv"
    rows = []
    for address, first, last in READERS:
        local, _, domain = address.partition("@")
        rows.append(f"{local}@{domain.upper()},{first},{last}")  # the import lowercases domains
    people.write_text("email,first_name,last_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    imported = runner.invoke(app, ["subscribers", "import", str(people)])
    assert imported.exit_code == 0, imported.stderr
    assert "Imported 6," in imported.stdout
    sink = Sink(smtputf8=True)
    with running_sink(sink) as port:
        smtp_project(port)
        result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    assert "Sent 6," in result.stdout
    check_received(sink, READERS)


def test_outbox_writes_utf8_copies(runner: CliRunner, example: Path, project: Path) -> None:
    add_readers(project)
    result = runner.invoke(app, ["send", str(example), "--yes", "--transport", "outbox"])
    assert result.exit_code == 0, result.stderr
    files = list((project / "outbox").rglob("new/*"))
    addresses = {parse(path.read_bytes())["To"].addresses[0].addr_spec for path in files}
    assert {unicode_address(address) for address in addresses} == {a for a, _, _ in READERS}


def test_unsendable_is_permanent_and_not_a_bounce(tmp_path: Path) -> None:
    error = Unsendable(NO_SMTPUTF8)
    assert error.permanent and not error.bounced and str(error) == NO_SMTPUTF8
    outbox = MaildirTransport(tmp_path / "box")
    outbox.open()
    assert outbox.send("a@b.example", "δοκιμή@παράδειγμα.gr", b"To: x\r\n\r\nhi\r\n", lambda: None)


@pytest.mark.parametrize("address", ["élodie@exemple.fr", "ascii@bücher.de", "用户@例子.中国"])
def test_confirmation_email_for_international_addresses(project: Path, address: str) -> None:
    config = load_config(project / "newsletter.toml")
    data = confirmation_email(
        config,
        make_environment(config.root),
        address,
        "Élodie",
        "https://news.example.org/confirm/x",
    )
    message = parse(data)
    assert unicode_address(message["To"].addresses[0].addr_spec) == address
    assert all(line.isascii() for line in data.split(b"\r\n") if not line.startswith(b"To:"))
    body = message.get_body(("plain",))
    assert body is not None and "Hi Élodie," in body.get_content()


LONGEST = "a" * 64 + "@" + ".".join(["b" * 60, "c" * 60, "d" * 59]) + ".example"  # 254


def test_no_header_line_exceeds_998_octets(project: Path, write_issue: Callable[..., Path]) -> None:
    subject = "Très long " * 120 + "x" * 1500
    folder = write_issue(
        f'subject: "{subject}"\npreheader: "p"\ndate: 2026-11-24\nlead:\n  title: "t"\n'
    )
    config = load_config(project / "newsletter.toml")
    built = build_issue(load_issue(folder), config)
    seed = nacl.signing.SigningKey.generate().encode(nacl.encoding.Base64Encoder)
    signing = DkimKey("nl", config.sender_domain, seed)  # the algorithm follows the key
    factory = MessageFactory(built, config, signer_for(config), dkim_key=signing)
    recipients = [
        Recipient(LONGEST, "N" * 900, "x" * 900),
        Recipient("é" * 30 + "@" + "ü" * 50 + ".de", " ".join(["Ωμέγα"] * 150), "李" * 300),
        Recipient("plain@example.com", "Doe, John", '"Quoted" \\ name'),
    ]
    for recipient in recipients:
        data = factory.render(recipient).data
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"DKIM-Signature:")
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        message = parse(data)
        assert message["Subject"] == subject.strip()
        assert to_header(data) == (recipient.name, recipient.email)
        assert message["List-Unsubscribe"].count("<") == 2


@pytest.mark.parametrize("smtputf8", [True, False])
def test_sign_up_confirmation_goes_through_the_relay(
    project: Path, smtp_project: Configure, smtputf8: bool
) -> None:
    address = "δοκιμή@παράδειγμα.gr"
    sink = Sink(smtputf8=smtputf8)
    with running_sink(sink) as port:
        config = load_config(smtp_project(port))
        data = confirmation_email(
            config, make_environment(config.root), address, "", "https://news.example.org/confirm/x"
        )
        if not smtputf8:
            with pytest.raises(Unsendable, match=NO_SMTPUTF8):
                outbox_mailer(config)(address, data)
            assert sink.count == 0
            return
        outbox_mailer(config)(address, data)
    [(rcpt, received)] = sink.messages
    assert rcpt == "δοκιμή@xn--hxajbheg2az3al.gr" and sink.envelopes[0][1][0] == "SMTPUTF8"
    assert unicode_address(parse(received)["To"].addresses[0].addr_spec) == address
