"""The inbound classifier over a corpus of real bounces, complaints and auto-replies, and over
messages built here for what the corpus cannot show (our tokens, mail unsubscribes)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.deliver.tokens import Signer
from newsletter.inbound.classify import Decision, classify, decision_json
from newsletter.inbound.rules import RULES
from newsletter.inbound.verp import (
    HEADER,
    delivery_token,
    token_from_address,
    verify_token,
    verp_address,
)

CORPUS_ENV = "NEWSLETTER_BOUNCE_CORPUS"
KEY = b"k" * 32

# sisimai's reasons that are a refusal of the sender or the content, or not a failure at all:
# none of these may ever be taken for a dead address. ("filtered" is left out: sisimai gives it
# to plain "User unknown" replies whose SMTP stage it cannot tell; it counts in the agreement.)
NEVER_HARD = {
    "blocked", "badreputation", "authfailure", "spamdetected", "rejected", "policyviolation",
    "securityerror", "virusdetected", "toomanyconn", "speeding", "norelaying", "requireptr",
    "notcompliantrfc", "contenterror", "syntaxerror", "vacation", "feedback", "delivered",
}  # fmt: skip
NOT_BOUNCES = {"feedback", "vacation", "delivered"}


def find_corpus(start: Path) -> Path | None:
    """The bounce corpus: $NEWSLETTER_BOUNCE_CORPUS, else `shared/corpora/bounces` in a folder
    above `start` (the repository sits beside `shared/`; a worktree may sit deeper)."""
    if os.environ.get(CORPUS_ENV):
        candidates = [Path(os.environ[CORPUS_ENV])]
    else:
        candidates = [folder / "shared" / "corpora" / "bounces" for folder in start.parents]
        candidates.append(Path("/work/shared/corpora/bounces"))
    return next((c for c in candidates if (c / "expected.json").is_file()), None)


@pytest.fixture(scope="module")
def corpus_root() -> Path:
    root = find_corpus(Path(__file__).resolve())
    if root is None:
        pytest.skip(f"no bounce corpus (expected.json): set {CORPUS_ENV} or put shared/ above")
    return root


@pytest.fixture(scope="module")
def corpus_files(corpus_root: Path) -> list[Path]:
    return sorted((corpus_root / "eml").glob("*.eml"))


@pytest.fixture(scope="module")
def corpus(
    corpus_root: Path, corpus_files: list[Path]
) -> Iterator[tuple[dict[str, list[dict[str, object]]], dict[str, Decision]]]:
    """(expected entries per file, our decision per file) for every file of the corpus."""
    expected = json.loads((corpus_root / "expected.json").read_text(encoding="utf-8"))
    assert {f.name for f in corpus_files} == set(expected), "expected.json and eml/ disagree"
    yield expected, {f.name: classify(f.read_bytes()) for f in corpus_files}


def _reasons(entries: list[dict[str, object]]) -> list[str]:
    return [str(e["reason"]) for e in entries]


def test_hard_agreement_with_corpus(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    agree = total = 0
    misses = []
    for name, entries in expected.items():
        want = [bool(e["hard"]) for e in entries]
        ours = [r.klass == "hard" for r in decided[name].recipients]
        ours += [False] * (len(want) - len(ours))  # a recipient not reported is not suppressed
        matched = min(sum(ours), sum(want)) + min(len(ours) - sum(ours), len(want) - sum(want))
        agree += matched
        total += len(want)
        if matched < len(want):
            misses.append(
                f"{name}: {_reasons(entries)} vs {[r.klass for r in decided[name].recipients]}"
            )
    share = agree / total
    print(f"\nhard/not-hard agreement: {agree}/{total} = {share:.1%}")
    print("\n".join(misses))
    assert share >= 0.97, f"agreement {share:.1%}:\n" + "\n".join(misses)


def test_no_refusal_and_no_auto_reply_is_hard(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    wrong = []
    for name, entries in expected.items():
        may_be_hard = sum(1 for r in _reasons(entries) if r not in NEVER_HARD)
        hard = [r for r in decided[name].recipients if r.klass == "hard"]
        if len(hard) > may_be_hard:
            wrong.append(f"{name}: {_reasons(entries)} -> {[r.diagnostic[:80] for r in hard]}")
    assert not wrong, "\n".join(wrong)


def test_every_feedback_report_is_a_complaint(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    reports = [n for n, e in expected.items() if "feedback" in _reasons(e)]
    assert reports
    for name in reports:
        decision = decided[name]
        assert decision.kind == "complaint", name
        assert all("@" in r.address for r in decision.recipients), name


def test_every_auto_reply_is_an_auto_reply(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    replies = [n for n, e in expected.items() if "vacation" in _reasons(e)]
    assert replies
    assert {n: decided[n].kind for n in replies} == dict.fromkeys(replies, "auto-reply")


def test_every_bounce_names_its_failed_recipients(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    short = {
        name: (decided[name].kind, len(decided[name].recipients), len(entries))
        for name, entries in expected.items()
        if not NOT_BOUNCES & set(_reasons(entries))
        and (decided[name].kind != "bounce" or len(decided[name].recipients) < len(entries))
    }
    assert not short, short


def test_success_reports_are_not_bounces(corpus: tuple[dict, dict]) -> None:
    expected, decided = corpus
    delivered = [n for n, e in expected.items() if set(_reasons(e)) == {"delivered"}]
    assert delivered
    assert all(decided[n].kind == "unclassified" for n in delivered)


def test_recipients_and_reasons_are_well_formed(corpus: tuple[dict, dict]) -> None:
    _, decided = corpus
    for name, decision in decided.items():
        assert "@" not in decision.reason, "the reason may be logged: it names no address"
        for recipient in decision.recipients:
            assert "@" in recipient.address, name
            if decision.kind == "bounce":
                assert recipient.status[:1] in ("4", "5") and recipient.status.count(".") == 2
                assert recipient.klass in ("hard", "soft", "policy")


def test_damaged_messages_never_raise(corpus_files: list[Path]) -> None:
    noise = bytes(range(256)) * 2
    for file in corpus_files:
        raw = file.read_bytes()
        for damaged in (raw[: len(raw) // 2] + noise, noise + raw[:200]):
            assert classify(damaged).kind in (
                "bounce", "complaint", "auto-reply", "unsubscribe", "unclassified"
            )  # fmt: skip
    assert classify(b"").kind == "unclassified"


def test_large_bounces_take_linear_time() -> None:
    head = (
        "From: MAILER-DAEMON@mx.example.net\nTo: news@example.org\n"
        "Subject: Undelivered Mail Returned to Sender\n\n"
        "<gone@example.com>: host said: 550 5.1.1 user unknown\n\n"
    )
    for filler in ("A" * 300_000, "word." * 60_000, ("x" * 75 + "\n") * 25_000):
        started = time.monotonic()
        decision = classify((head + filler + "\n").encode())
        assert time.monotonic() - started < 10
        assert [r.klass for r in decision.recipients] == ["hard"]


# --- rules ------------------------------------------------------------------------------------


def test_every_rule_has_a_reason_and_exactly_one_pattern() -> None:
    for rule in RULES:
        assert rule.reason and rule.klass in ("hard", "soft", "policy")
        assert sum(bool(p) for p in (rule.text, rule.status, rule.session, rule.first)) == 1


@pytest.mark.parametrize(
    ("status", "diagnostic", "klass"),
    [
        ("5.1.1", "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown", "hard"),
        ("5.0.0", "550 Host unknown", "hard"),
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", "hard"),
        ("5.2.2", "552 5.2.2 Mailbox full", "soft"),
        ("4.4.7", "delivery time expired", "soft"),
        (
            "5.7.1",
            "550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            "policy",
        ),
        ("5.7.26", "550 5.7.26 Unauthenticated email is not accepted (DMARC policy)", "policy"),
        ("5.0.0", "554 5.7.1 Message rejected as spam", "policy"),
        ("5.1.1", "550 5.1.1 user unknown; also listed by RBL", "policy"),
        ("4.7.0", "421 4.7.0 Try again later, closing connection (rate limited)", "policy"),
        ("5.0.0", "550 filtered@example.org... User unknown", "hard"),
    ],
)
def test_judged_class(status: str, diagnostic: str, klass: str) -> None:
    from newsletter.inbound.rules import judge

    assert judge(status, diagnostic, status.startswith("4"))[0] == klass


# --- messages built here ----------------------------------------------------------------------


def _dsn(to: str, recipient: str, status: str, diagnostic: str, original: EmailMessage) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        f"To: {to}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n'
        "\n--b1\nContent-Type: text/plain\n\n"
        "Your message could not be delivered to one or more recipients.\n"
        "\n--b1\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
        "\n--b1\nContent-Type: message/rfc822\n\n"
        f"{original.as_string()}\n--b1--\n"
    ).encode()


def _original(token: str | None = None, body: str = "Hello\n") -> EmailMessage:
    original = EmailMessage()
    original["From"] = "News <news@example.org>"
    original["To"] = "reader@example.com"
    original["Subject"] = "Issue 1"
    original["Message-ID"] = "<issue-1.7.abc@example.org>"
    if token:
        original[HEADER] = token
    original.set_content(body)
    return original


def test_token_from_the_verp_address_the_bounce_came_to() -> None:
    token = delivery_token(KEY, "issue-1", 7)
    raw = _dsn(
        verp_address(token, "bounce.example.org"),
        "reader@example.com",
        "5.1.1",
        "550 5.1.1 <reader@example.com>: Recipient address rejected: User unknown",
        _original(),
    )
    decision = classify(raw)
    assert decision.kind == "bounce"
    assert decision.token == token
    assert decision.original_message_id == "<issue-1.7.abc@example.org>"
    assert decision.recipients[0].address == "reader@example.com"
    assert decision.recipients[0].klass == "hard"
    delivery = verify_token(KEY, decision.token)
    assert delivery is not None and delivery.subscriber_id == 7 and delivery.is_for("issue-1")


def test_token_from_the_returned_headers_and_from_the_body() -> None:
    token = delivery_token(KEY, "issue-1", 7)
    in_headers = _dsn(
        "news@example.org", "reader@example.com", "5.2.2", "552 full", _original(token)
    )
    assert classify(in_headers).token == token
    quoted = f"Return-Path: <bounces+{token}@bounce.example.org>\n"
    in_body = _dsn("news@example.org", "reader@example.com", "5.2.2", "552 full", _original())
    in_body = in_body.replace(b"Your message could", f"{quoted}\nYour message could".encode())
    assert classify(in_body).token == token


def test_amazon_ses_event_notification() -> None:
    event = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [
                {"emailAddress": "gone@example.com", "status": "5.1.1",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
                {"emailAddress": "blocked@example.com", "status": "5.7.1",
                 "diagnosticCode": "smtp; 554 5.7.1 rejected by the receiver's spam filter"},
            ],
        },
        "mail": {"messageId": "x"},
    }  # fmt: skip
    mail = EmailMessage()
    mail["From"] = "no-reply@sns.amazonaws.com"
    mail["To"] = "news@example.org"
    mail["Subject"] = "AWS Notification Message"
    mail.set_content(json.dumps(event))
    decision = classify(mail.as_bytes())
    assert decision.kind == "bounce"
    assert [(r.address, r.status, r.klass) for r in decision.recipients] == [
        ("gone@example.com", "5.1.1", "hard"),
        ("blocked@example.com", "5.7.1", "policy"),
    ]


def test_decision_json_shape() -> None:
    raw = _dsn(
        "news@example.org", "reader@example.com", "5.2.2", "552 5.2.2 Mailbox full", _original()
    )
    record = decision_json("x.eml", classify(raw))
    assert record["file"] == "x.eml" and record["kind"] == "bounce"
    assert record["recipients"] == [
        {"address": "reader@example.com", "status": "5.2.2", "class": "soft"}
    ]
    assert isinstance(record["reason"], str) and record["reason"]
    json.dumps(record)


def test_mail_unsubscribe_carries_the_signed_token() -> None:
    token = Signer(KEY).subscriber_token("0123456789abcdef0123456789abcdef", "issue-1")
    mail = EmailMessage()
    mail["From"] = "reader@example.com"
    mail["To"] = "unsubscribe@example.org"
    mail["Subject"] = f"unsubscribe {token}"
    mail.set_content("This message will unsubscribe you.\n")
    decision = classify(mail.as_bytes())
    assert decision.kind == "unsubscribe"
    assert decision.token == token
    owner = Signer(KEY).read_subscriber_token(decision.token)
    assert (owner.public_id, owner.context) == ("0123456789abcdef0123456789abcdef", "issue-1")


def test_mail_unsubscribe_from_a_client_that_kept_the_escaped_space() -> None:
    token = Signer(KEY).subscriber_token("0123456789abcdef0123456789abcdef", "issue-1")
    mail = EmailMessage()
    mail["From"] = "reader@example.com"
    mail["To"] = "unsubscribe@example.org"
    mail["Subject"] = f"Re: unsubscribe%20{token}"
    mail.set_content("\n")
    decision = classify(mail.as_bytes())
    assert (decision.kind, decision.token) == ("unsubscribe", token)


def test_mail_unsubscribe_token_in_the_to_address() -> None:
    token = Signer(KEY).subscriber_token("0123456789abcdef0123456789abcdef", "issue-1")
    mail = EmailMessage()
    mail["From"] = "reader@example.com"
    mail["To"] = f"unsubscribe+{token}@example.org"
    mail["Subject"] = "Unsubscribe"
    mail.set_content("\n")
    assert classify(mail.as_bytes()).token == token


def test_auto_reply_is_never_a_bounce() -> None:
    reply = EmailMessage()
    reply["From"] = "reader@example.com"
    reply["To"] = verp_address(delivery_token(KEY, "issue-1", 7), "bounce.example.org")
    reply["Subject"] = "Out of Office: Issue 1"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content(
        "I am away until Monday. Mail that could not be delivered to my team, or returned as\n"
        "undeliverable, will be answered then.\n\n-----Original Message-----\n"
        "From: news@example.org\nTo: reader@example.com\nSubject: Issue 1\n\nHello\n"
    )
    decision = classify(reply.as_bytes())
    assert decision.kind == "auto-reply" and decision.recipients == ()


def test_plain_mail_is_unclassified() -> None:
    mail = EmailMessage()
    mail["From"] = "reader@example.com"
    mail["To"] = "news@example.org"
    mail["Subject"] = "Thanks for the issue"
    mail.set_content("Loved it.\n")
    assert classify(mail.as_bytes()).kind == "unclassified"


# --- VERP tokens ------------------------------------------------------------------------------


def test_verp_round_trip_survives_case_folding() -> None:
    token = delivery_token(KEY, "2026-11-24-france-welcomes-chechen-refugees", 123456)
    address = verp_address(token, "bounce.example.org")
    assert address.startswith("bounces+") and len(address.partition("@")[0]) <= 64
    found = token_from_address(address.upper())
    assert found == token
    delivery = verify_token(KEY, found)
    assert delivery is not None and delivery.subscriber_id == 123456
    assert delivery.is_for("2026-11-24-france-welcomes-chechen-refugees")
    assert not delivery.is_for("another-issue")


def test_forged_or_altered_tokens_are_rejected() -> None:
    token = delivery_token(KEY, "issue-1", 7)
    assert verify_token(b"another key", token) is None
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert verify_token(KEY, flipped) is None
    assert verify_token(KEY, token[:-2]) is None
    assert verify_token(KEY, "not a token!") is None
    assert verify_token(KEY, "") is None
    assert token_from_address("reader+tag@example.com") is None
    assert token_from_address("bounces@example.org") is None
