"""Header lines for outgoing mail: encoded and folded so that no line exceeds 998 octets.

Values beyond ASCII become RFC 2047 encoded words, which can be split anywhere; plain ASCII
is folded at its spaces (RFC 5322 2.2.3), or encoded too when a single word is too long to
fit a line. Addresses themselves are never encoded: a local part beyond ASCII is written in
UTF-8 (RFC 6532), which only a relay with SMTPUTF8 takes.
"""

from __future__ import annotations

from email.header import Header
from email.utils import formataddr

from newsletter.deliver.addresses import wire_address

CRLF = b"\r\n"
MAX_LINE = 998  # octets, without the CRLF (RFC 5322 2.1.1)
_FOLD = 78  # the length lines should keep to


def _encoded(name: str, value: str) -> str:
    """`value` as RFC 2047 encoded words, folded with CRLF + space."""
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def header_line(name: str, value: str) -> bytes:
    """`Name: value` with CRLF, encoded and folded when it is not short plain ASCII."""
    line = f"{name}: {value}"
    if value.isascii() and len(line) <= _FOLD:
        return line.encode("ascii") + CRLF
    if value.isascii():
        folded = Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")
        if max(len(part) for part in folded.split("\r\n")) + len(name) + 2 > MAX_LINE:
            folded = _encoded(name, value)
    else:
        folded = _encoded(name, value)
    return f"{name}: {folded}".encode("ascii") + CRLF


def _phrase(field: str, name: str, room: int) -> str:
    """A display name: as it is or quoted when short ASCII, else RFC 2047 encoded words."""
    if name.isascii() and len(name) + 2 <= room:
        return formataddr((name, "")).removesuffix(" <>")  # quoted if it holds specials
    return _encoded(field, name)


def named_header(field: str, name: str, target: str) -> bytes:
    """`Field: name <target>`, where `target` is an address or list id already on the wire."""
    if not name:
        return f"{field}: {target}".encode() + CRLF
    angle = f"<{target}>"
    phrase = _phrase(field, name, _FOLD - len(field) - len(angle) - 3)
    last = phrase.rpartition("\r\n")[2]
    start = len(field) + 2 if last == phrase else 0
    gap = " " if start + len(last) + 1 + len(angle) <= _FOLD else "\r\n "
    return f"{field}: {phrase}{gap}{angle}".encode() + CRLF


def address_header(field: str, name: str, address: str) -> bytes:
    """`Field: name <address>` with the address's domain in IDNA."""
    return named_header(field, name, wire_address(address))
