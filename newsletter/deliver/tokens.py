"""Signed tokens for the links in every email (unsubscribe, preferences, confirmation).

A token is `base64url(fields) . base64url(HMAC-SHA256(key, purpose + fields)[:16])`. The fields
name a subscriber only by their random public id (the `public_id` column), never by address,
so a link in a server log or a forwarded email says nothing about who it belongs to; only the
holder of the key can make one, so nobody can unsubscribe someone else by guessing.

Tokens of the first format, which carried the address itself, are still accepted (they are in
emails already sent) but never made. Both decode canonically: a token is refused unless it is
exactly how its bytes encode (no padding, no other alphabet, no stray bits or characters).

The key comes from NEWSLETTER_SECRET or from a key file created on first use (mode 0600, in a
folder with its own `.gitignore`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.config import Config
from newsletter.errors import Problem, TokenError

if TYPE_CHECKING:
    from newsletter.deliver.subscribers import Subscriber, SubscriberStore

SECRET_ENV = "NEWSLETTER_SECRET"
_SEP = "\x1f"
#: Purposes of this format are prefixed, so no token of one format verifies as the other.
_V2 = "v2:"
UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """The bytes `text` encodes, only if `text` is their one canonical spelling."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _malformed() -> TokenError:
    return TokenError(
        Problem("the link's token is malformed; copy the whole link", code="bad-token")
    )


def load_key(key_file: Path) -> bytes:
    """The signing key: NEWSLETTER_SECRET if set, else `key_file`, created on first use.

    The file appears whole (written aside, then linked into place), and when several processes
    create it at once (web workers starting together) the first one's key is everyone's.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        ignore = key_file.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# secrets: never commit\n*\n", encoding="utf-8")
        aside = key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(aside, key_file)
        finally:
            aside.unlink()
    return key_file.read_text(encoding="ascii").strip().encode("ascii")


def key_source(config: Config) -> str:
    """Where the signing key comes from, in words (for messages about a changed key)."""
    if os.environ.get(SECRET_ENV):
        return f"the environment variable {SECRET_ENV}"
    return f"the key file {config.path(config.secret_file)}"


def signer_for(config: Config) -> Signer:
    """The project's signer: its key from the environment or the configured key file."""
    return Signer(load_key(config.path(config.secret_file)))


@dataclass(frozen=True)
class LinkOwner:
    """Whom a subscriber link names: a public id, or an address in a first-format token."""

    public_id: str | None
    email: str | None
    context: str  # the issue's slug (unsubscribe links) or the time it was made (confirmation)

    @property
    def is_test(self) -> bool:
        """A link from a test copy, which names nobody."""
        return self.public_id == ""

    def find(self, store: SubscriberStore) -> Subscriber | None:
        """The subscriber the link names, if they are still on the list."""
        if self.public_id is not None:
            return store.get_by_public_id(self.public_id) if self.public_id else None
        return store.get(self.email or "")


class Signer:
    """Makes and checks tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @property
    def fingerprint(self) -> str:
        """A short digest that tells keys apart without revealing them."""
        return hmac.new(self._key, b"newsletter key fingerprint", hashlib.sha256).hexdigest()[:16]

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]

    def subkey(self, purpose: str) -> bytes:
        """A key of its own for another signing scheme (click links), derived from this one."""
        return hmac.new(self._key, b"subkey\0" + purpose.encode(), hashlib.sha256).digest()

    def _sign(self, purpose: str, fields: tuple[str, ...]) -> str:
        payload = _SEP.join(fields).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(purpose, payload))}"

    def _verify(self, purposes: tuple[str, ...], token: str) -> tuple[str, list[str]]:
        """The purpose (of `purposes`) a genuine token was made for, and its fields."""
        body, _, mac = token.strip().partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
            for purpose in purposes:
                if hmac.compare_digest(given, self._mac(purpose, payload)):
                    return purpose, payload.decode("utf-8").split(_SEP)
        except (binascii.Error, ValueError):
            raise _malformed() from None
        raise TokenError(
            Problem("the link's token is not genuine (forged or altered)", code="bad-token")
        )

    def sign(self, purpose: str, *fields: str) -> str:
        """A token carrying `fields`, valid only for `purpose`."""
        return self._sign(_V2 + purpose, fields)

    def verify(self, purpose: str, token: str) -> list[str]:
        """The fields of a genuine token for `purpose`; TokenError for anything else."""
        return self._verify((_V2 + purpose,), token)[1]

    def subscriber_token(self, public_id: str, issue: str) -> str:
        """The token of one subscriber's unsubscribe and preferences links in one issue."""
        return self.sign(UNSUBSCRIBE, public_id, issue)

    def confirm_token(self, public_id: str, now: float, version: int) -> str:
        """The token of a confirmation link made at `now` for a subscriber whose status has
        changed `version` times: once it changes again, the link confirms nothing."""
        return self.sign(CONFIRM, public_id, str(int(now)), str(version))

    def _owner(self, purpose: str, token: str, size: int) -> tuple[LinkOwner, list[str]]:
        """Whom a token names, and its further fields (`size` of them in this format)."""
        made_for, fields = self._verify((_V2 + purpose, purpose), token)
        if made_for == purpose and len(fields) == 2:  # the first format: the address itself
            return LinkOwner(None, fields[0], fields[1]), []
        if made_for != purpose and len(fields) == size:
            return LinkOwner(fields[0], None, fields[1]), fields[2:]
        raise _malformed()

    def read_subscriber_token(self, token: str) -> LinkOwner:
        """Whom an unsubscribe or preferences token names (either format)."""
        return self._owner(UNSUBSCRIBE, token, 2)[0]

    def read_confirm(self, token: str, max_age: float, now: float) -> tuple[LinkOwner, int | None]:
        """Whom a confirmation token names and the status version it was made at (None in the
        first format), if it is no older than `max_age` seconds."""
        owner, rest = self._owner(CONFIRM, token, 3)
        if not owner.context.isdigit() or not all(field.isdigit() for field in rest):
            raise _malformed()
        if now - int(owner.context) > max_age:
            raise TokenError(Problem("the link has expired; ask for a new one", code="bad-token"))
        return owner, int(rest[0]) if rest else None


def token_from(text: str) -> str:
    """The token in anything an unsubscribe can arrive as: the https link, the `mailto:` link,
    the subject line of that mail ('unsubscribe TOKEN'), or the bare token."""
    text = text.strip()
    if text.lower().startswith("mailto:"):
        subject = parse_qs(urlsplit(text).query).get("subject", [""])[0]
        text = subject
    if text.lower().startswith("subject:"):
        text = text[len("subject:") :].strip()
    words = text.split()
    if len(words) == 2 and words[0].lower() == "unsubscribe":
        text = words[1]
    if "/" in text:
        text = urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1]
    return unquote(text)
