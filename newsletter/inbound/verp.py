"""VERP envelope senders: one signed token per delivery, so a bounce names its copy.

A token packs the subscriber id (unsigned LEB128) and a 4-byte tag of the issue slug, then
10 bytes of HMAC-SHA256 over both, in lowercase base32 without padding: about 26 characters,
letters and digits only, so it survives MTAs that fold the case of a local part and stays
within the 64-octet limit of RFC 5321 together with `bounces+`. The slug itself is not in the
token (it would not fit); `Delivery.is_for(slug)` matches it. The same token travels in the
`X-Newsletter-Delivery` header, for bounces that keep the headers but lose the envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

HEADER = "X-Newsletter-Delivery"
_MAC_BYTES = 10
_TAG_BYTES = 4
_MAX_ID_BYTES = 9
_TOKEN = re.compile(r"[a-z2-7]{24,40}")


@dataclass(frozen=True)
class Delivery:
    """What a genuine token says: which subscriber, and a tag of which issue."""

    subscriber_id: int
    issue_tag: bytes

    def is_for(self, slug: str) -> bool:
        """True when this delivery was of the issue `slug`."""
        return hmac.compare_digest(self.issue_tag, _issue_tag(slug))


def _issue_tag(slug: str) -> bytes:
    return hashlib.sha256(slug.encode("utf-8")).digest()[:_TAG_BYTES]


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _unvarint(data: bytes) -> tuple[int, int] | None:
    """(number, bytes used) of the LEB128 number at the start of `data`, or None."""
    number = 0
    for index, byte in enumerate(data[:_MAX_ID_BYTES]):
        number |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return number, index + 1
    return None


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"verp\0" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


class DeliveryTokens:
    """The tokens of one issue's copies, with the issue's tag and the MAC's key prepared once."""

    def __init__(self, key: bytes, slug: str) -> None:
        self._tag = _issue_tag(slug)
        self._mac = hmac.new(key, b"verp\0", hashlib.sha256)

    def __call__(self, subscriber_id: int) -> str:
        """The token of the copy sent to subscriber `subscriber_id`."""
        if subscriber_id < 0:
            raise ValueError("a subscriber id is never negative")
        payload = _varint(subscriber_id) + self._tag
        mac = self._mac.copy()
        mac.update(payload)
        raw = payload + mac.digest()[:_MAC_BYTES]
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def delivery_token(key: bytes, slug: str, subscriber_id: int) -> str:
    """The token of one copy of issue `slug` sent to subscriber `subscriber_id`."""
    return DeliveryTokens(key, slug)(subscriber_id)


def verify_token(key: bytes, token: str) -> Delivery | None:
    """The delivery a genuine token names; None for a malformed, forged or altered one."""
    text = token.strip().upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    payload, given = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    parsed = _unvarint(payload)
    if parsed is None or len(payload) != parsed[1] + _TAG_BYTES:
        return None
    if not hmac.compare_digest(given, _mac(key, payload)):
        return None
    return Delivery(parsed[0], payload[parsed[1] :])


def verp_address(token: str, bounce_domain: str, local: str = "bounces") -> str:
    """The envelope sender carrying `token`: `bounces+<token>@bounce.example.org`."""
    return f"{local}+{token}@{bounce_domain}"


def token_from_address(addr: str) -> str | None:
    """The token-shaped part after `+` in an address's local part (unverified), or None."""
    local = addr.strip().strip("<>").rpartition("@")[0]
    _, plus, tail = local.rpartition("+")
    candidate = tail.lower()
    return candidate if plus and _TOKEN.fullmatch(candidate) else None


def find_tokens(text: str) -> list[str]:
    """Token-shaped strings in `text` after a `+` in an address or in the delivery header."""
    pattern = re.compile(
        r"\+([a-z2-7]{24,40})@|" + re.escape(HEADER) + r":\s*([a-z2-7]{24,40})\b", re.IGNORECASE
    )
    return [(m.group(1) or m.group(2)).lower() for m in pattern.finditer(text)]
