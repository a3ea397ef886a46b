"""Signed tokens for the links in every email (unsubscribe, preferences, confirmation).

A token is `base64url(fields) . base64url(HMAC-SHA256(key, purpose + fields)[:16])`: it names
its subscriber and issue in the clear, and only the holder of the key can make one, so nobody
can unsubscribe someone else by guessing. The key comes from NEWSLETTER_SECRET or from a key
file created on first use (mode 0600, in a folder with its own `.gitignore`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from newsletter.config import Config
from newsletter.errors import InputError, Problem

SECRET_ENV = "NEWSLETTER_SECRET"
_SEP = "\x1f"


class TokenError(InputError):
    """A token that is malformed, forged or altered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(key_file: Path) -> bytes:
    """The signing key: NEWSLETTER_SECRET if set, else `key_file`, created on first use."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        ignore = key_file.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# secrets: never commit\n*\n", encoding="utf-8")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return key_file.read_text(encoding="ascii").strip().encode("ascii")


def signer_for(config: Config) -> Signer:
    """The project's signer: its key from the environment or the configured key file."""
    return Signer(load_key(config.path(config.secret_file)))


class Signer:
    """Makes and checks tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]

    def subkey(self, purpose: str) -> bytes:
        """A key of its own for another signing scheme (click links), derived from this one."""
        return hmac.new(self._key, b"subkey\0" + purpose.encode(), hashlib.sha256).digest()

    def sign(self, purpose: str, *fields: str) -> str:
        """A token carrying `fields`, valid only for `purpose`."""
        payload = _SEP.join(fields).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(purpose, payload))}"

    def verify(self, purpose: str, token: str) -> list[str]:
        """The fields of a genuine token for `purpose`; TokenError for anything else."""
        body, _, mac = token.strip().partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            problem = Problem("the link's token is malformed; copy the whole link")
            raise TokenError(problem) from None
        if not hmac.compare_digest(given, self._mac(purpose, payload)):
            raise TokenError(Problem("the link's token is not genuine (forged or altered)"))
        return payload.decode("utf-8").split(_SEP)

    def unsubscribe_token(self, email: str, issue: str) -> str:
        """The token of one subscriber's unsubscribe link in one issue (it never expires)."""
        return self.sign("unsubscribe", email, issue)

    def timed_token(self, purpose: str, value: str, now: float) -> str:
        """A token for `value` that `verify_timed` accepts until it is too old."""
        return self.sign(purpose, value, str(int(now)))

    def verify_timed(self, purpose: str, token: str, max_age: float, now: float) -> str:
        """The value of a genuine token no older than `max_age` seconds."""
        fields = self.verify(purpose, token)
        if len(fields) != 2 or not fields[1].isdigit():
            raise TokenError(Problem("the link's token is malformed; copy the whole link"))
        if now - int(fields[1]) > max_age:
            raise TokenError(Problem("the link has expired; ask for a new one"))
        return fields[0]
