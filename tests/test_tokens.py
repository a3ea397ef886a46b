"""Link tokens: opaque, signed, canonical; old links still work; every form is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import mailbox
import os
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key, token_from
from newsletter.errors import TokenError

KEY = b"k" * 32
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def first_format(key: bytes, purpose: str, *fields: str) -> str:
    """A token as the first version made them (the address in the clear), from first principles."""
    payload = "\x1f".join(fields).encode()
    mac = hmac.new(key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(mac)}"


def spellings(email: str) -> set[str]:
    """The address in every encoding a token could hide it in, at every byte alignment."""
    raw = email.encode()
    found = {email, email.upper(), raw.hex(), raw.hex().upper()}
    for shift in range(5):
        data = b"\0" * shift + raw
        for encode, bits in (
            (base64.b64encode, 6), (base64.urlsafe_b64encode, 6), (base64.b32encode, 5)
        ):  # fmt: skip
            text = encode(data).decode()
            # only the characters made of the address's bits alone
            core = text[-(-8 * shift // bits) : 8 * len(data) // bits]
            found |= {core, core.lower(), core.upper()}
    return {s for s in found if len(s) >= 6}


@pytest.fixture
def store(project: Path) -> SubscriberStore:
    config = load_config()
    return SubscriberStore.open(config.database_location)


def test_no_token_contains_the_address_in_any_encoding(store: SubscriberStore) -> None:
    signer = Signer(KEY)
    for email in ("ada@example.org", "very.long.name+news@subdomain.example.co.uk"):
        person = store.add(email)
        tokens = [
            signer.subscriber_token(person.public_id, "2026-11-24-some-issue"),
            signer.confirm_token(person.public_id, 1_800_000_000, 1),
        ]
        for token in tokens:
            for text in (token, token.lower(), token.upper(), unquote(token)):
                assert not [s for s in spellings(email) if s.lower() in text.lower()], token
        # and the legacy format really did contain it (the check can see an address)
        legacy = first_format(KEY, "unsubscribe", email, "x").lower()
        assert [s for s in spellings(email) if s.lower() in legacy]


def test_sent_email_links_hold_no_address(
    runner: CliRunner, example: Path, project: Path, store: SubscriberStore
) -> None:
    store.add("ada.lovelace@example.org", "Ada")
    assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0
    [message] = mailbox.Maildir(project / "outbox" / example.name, create=False)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    text = parsed.get_body(("plain",)).get_content() + parsed.get_body(("html",)).get_content()
    urls = re.findall(r"(?:https://|mailto:)[^\s\"<>]+", text + parsed["List-Unsubscribe"])
    ours = [url for url in urls if "news.example.org" in url]
    assert len(ours) >= 4
    for url in ours:
        assert not [s for s in spellings("ada.lovelace@example.org") if s.lower() in url.lower()]


def test_links_of_the_first_format_keep_working(
    runner: CliRunner, store: SubscriberStore, project: Path
) -> None:
    key = load_key(project / ".newsletter" / "secret.key")
    store.add("ada@example.org")
    old = first_format(key, "unsubscribe", "ada@example.org", "2025-01-01-old")
    owner = Signer(key).read_subscriber_token(old)
    assert (owner.email, owner.context) == ("ada@example.org", "2025-01-01-old")
    forged = first_format(b"other key", "unsubscribe", "ada@example.org", "2025-01-01-old")
    with pytest.raises(TokenError):
        Signer(key).read_subscriber_token(forged)
    result = runner.invoke(app, ["unsubscribe", f"https://news.example.org/unsubscribe/{old}"])
    assert result.exit_code == 0, result.stderr
    assert store.get("ada@example.org").status == Status.UNSUBSCRIBED


def test_formats_do_not_cross() -> None:
    signer = Signer(KEY)
    # a new token's fields signed for the old purpose, and the reverse, are both refused
    assert signer.verify("csrf", signer.sign("csrf", "n")) == ["n"]
    with pytest.raises(TokenError):
        signer.verify("csrf", first_format(KEY, "csrf", "n"))
    with pytest.raises(TokenError):
        signer.read_subscriber_token(signer.sign("confirm", "abc", "1"))


def test_tokens_decode_canonically() -> None:
    signer = Signer(KEY)
    token = signer.subscriber_token("0123456789abcdef0123456789abcdef", "2026-11-24-x")
    assert signer.read_subscriber_token(token).public_id == "0123456789abcdef0123456789abcdef"
    body, mac = token.split(".")

    def spelled(text: str) -> list[str]:
        """Other spellings of the same bytes: low bits set, padding, a stray character."""
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        others = [text + "==", text[:3] + "!" + text[3:]]
        for char in ALPHABET:
            other = text[:-1] + char
            if base64.urlsafe_b64decode(other + "=" * (-len(other) % 4)) == data:
                others.append(other)
        return [other for other in others if other != text]

    variants = {f"{b}.{mac}" for b in spelled(body)} | {f"{body}.{m}" for m in spelled(mac)}
    variants.add(token.replace("-", "+").replace("_", "/"))
    variants.discard(token)
    assert len(variants) >= 5
    for variant in variants:
        with pytest.raises(TokenError):
            signer.read_subscriber_token(variant)


def test_unsubscribe_accepts_every_form_it_produces(
    runner: CliRunner, example: Path, project: Path, store: SubscriberStore
) -> None:
    people = [store.add(f"p{i}@example.org") for i in range(4)]
    assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0
    forms = {}
    for message in mailbox.Maildir(project / "outbox" / example.name, create=False):
        parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
        https, mailto = re.findall(r"<([^>]+)>", parsed["List-Unsubscribe"])
        subject = unquote(mailto.split("subject=", 1)[1])
        forms[str(parsed["To"])] = [https, mailto, subject, f"Subject: {subject}"]
    for person, form in zip(people, [0, 1, 2, 3], strict=True):
        link = forms[person.email][form]
        result = runner.invoke(app, ["unsubscribe", link])
        assert result.exit_code == 0, (link, result.stderr)
        assert store.get(person.email).status == Status.UNSUBSCRIBED
    assert token_from("https://x.example/newsletter/unsubscribe/abc.def/?utm=1") == "abc.def"


def test_a_changed_signing_key_is_reported_before_a_send(
    runner: CliRunner, example: Path, store: SubscriberStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add("ada@example.org")
    assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0
    monkeypatch.setenv("NEWSLETTER_SECRET", "a different key")
    result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 2
    assert "signing key (from the environment variable NEWSLETTER_SECRET)" in result.stderr
    assert "Traceback" not in result.stderr
    accepted = runner.invoke(app, ["send", str(example), "--yes", "--accept-new-key"])
    assert accepted.exit_code == 0, accepted.stderr
    assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0


def test_an_older_database_gets_a_public_id_for_everyone(tmp_path: Path) -> None:
    import sqlite3

    from newsletter.deliver import db

    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN;{db.MIGRATIONS[0]};PRAGMA user_version = 1;COMMIT;")
    for i in range(50):
        old.execute(
            "INSERT INTO subscribers (email, status_changed_at, created_at) VALUES (?, 'x', 'x')",
            (f"p{i}@example.org",),
        )
    old.close()
    with SubscriberStore.open(path) as store:
        ids = [person.public_id for person in store.iter()]
        assert len(set(ids)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
        added = store.add("new@example.org")
        assert re.fullmatch(r"[0-9a-f]{32}", added.public_id) and added.public_id not in ids
        assert store.get_by_public_id(added.public_id) == added


def test_processes_creating_the_key_at_once_all_get_the_first_ones(tmp_path: Path) -> None:
    """Web workers starting together: one key file, whole, and the same key for each."""
    key_file = tmp_path / ".newsletter" / "secret.key"
    script = "import sys; from pathlib import Path; from newsletter.deliver.tokens import load_key"
    script += "; print(load_key(Path(sys.argv[1])).decode())"
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_SECRET"}
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(key_file)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(6)
    ]
    keys = {start.communicate(timeout=30)[0].strip() for start in starts}
    assert keys == {key_file.read_text().strip()} and len(keys.pop()) == 64
    assert sorted(p.name for p in key_file.parent.iterdir()) == [".gitignore", "secret.key"]
    assert key_file.stat().st_mode & 0o777 == 0o600
