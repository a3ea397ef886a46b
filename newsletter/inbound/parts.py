"""Reading an inbound message: decoded headers, text parts, and the returned original's headers."""

from __future__ import annotations

import contextlib
import email.errors
import email.header
import email.utils
import re
from email.message import Message
from email.parser import HeaderParser

ORIGINAL_MARK = re.compile(
    r"^[\s\-=*|_]*(below this line is a copy|unsent message follows"
    r"|original message (follows|headers)"
    r"|this is a copy of the message|message header follows|returned message"
    r"|message text follows|text of the (returned )?message|headers of the original"
    r"|original message header|original message\s*(-{3,}|:?\s*$)|(message )?headers follow"
    r"|undelivered message|------ this is a copy"
    r"|content-type: message/rfc822|content-type: text/rfc822-headers).*$",
    re.IGNORECASE | re.MULTILINE,
)
HUMAN_LIMIT = 64_000  # a bounce explains itself well within this; the rest is never read
_QUOTE = re.compile(r"^>(?: |$|(?=>>> )|(?=<<< ))", re.MULTILINE)
_TAGS = re.compile(r"<(br|p|div|tr|li)\b[^>]*>", re.IGNORECASE)


def header(msg: Message, name: str) -> str:
    """A header's value, decoded from RFC 2047 and unfolded; "" when absent."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        pieces = email.header.decode_header(value)
    except email.errors.HeaderParseError:
        return " ".join(_mended(str(value)).split())
    text = "".join(
        _decoded(data, charset) if isinstance(data, bytes) else data for data, charset in pieces
    )
    return " ".join(_mended(text).split())


def _decoded(data: bytes, charset: str | None) -> str:
    """Bytes of a header in their declared charset, else UTF-8, else ISO-2022-JP, else Latin-1."""
    declared = [charset] if charset and charset != "unknown-8bit" else []
    for attempt in (*declared, "utf-8", "iso-2022-jp"):
        with contextlib.suppress(LookupError, ValueError):  # unknown or malformed charset
            return data.decode(attempt)
    return data.decode("latin-1")


def _mended(text: str) -> str:
    """`text` with raw 8-bit bytes read as UTF-8 and raw ISO-2022-JP decoded (what MTAs put
    into headers and DSN fields without RFC 2047)."""
    with contextlib.suppress(UnicodeError):
        text = text.encode("ascii", "surrogateescape").decode("utf-8")
    if "\x1b$" in text:
        with contextlib.suppress(UnicodeError):
            text = text.encode("latin-1").decode("iso-2022-jp")
    return text


def addresses(msg: Message, name: str) -> list[str]:
    """The addresses in every `name` header of `msg`."""
    values = [str(v) for v in msg.get_all(name, [])]
    return [a for _, a in email.utils.getaddresses(values) if "@" in a]


def text_of(part: Message) -> str:
    """The decoded text of a non-multipart part."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    for attempt in (charset, "utf-8"):
        with contextlib.suppress(LookupError, ValueError):  # unknown or malformed charset
            return payload.decode(attempt)
    return payload.decode("latin-1")


def outer_parts(msg: Message) -> list[Message]:
    """Every part of `msg`, not descending into attached messages."""
    parts = [msg]
    if msg.is_multipart() and msg.get_content_maintype() != "message":
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                parts.extend(outer_parts(sub))
    return parts


def all_text(msg: Message) -> str:
    """The decoded text of every leaf part, attached messages included, quote marks removed."""
    return _QUOTE.sub("", "\n".join(text_of(p) for p in msg.walk() if not p.is_multipart()))


def human_text(msg: Message) -> str:
    """The bounce's own words: its text parts, cut before the copy of the original message."""
    chunks = [
        text_of(p)
        for p in outer_parts(msg)
        if not p.is_multipart()
        and (
            p.get_content_type() in ("text/plain", "text/html")
            or p.get_content_maintype() == "multipart"
        )
    ]
    text = _QUOTE.sub("", "\n".join(c for c in chunks if c))
    if "<html" in text.lower() or "<br" in text.lower():
        text = re.sub(r"<[^>]+>", " ", _TAGS.sub("\n", text))
    mark = ORIGINAL_MARK.search(text)
    if mark is not None and mark.start() > 0:
        text = text[: mark.start()]
    return text[:HUMAN_LIMIT]


def returned_headers(msg: Message) -> list[Message]:
    """Headers of the returned original: message/rfc822 or text/rfc822-headers parts, or the
    header block that follows a bounce's "original message follows" line."""
    found = []
    for part in outer_parts(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found.append(inner[0])
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "text/global-headers"):
            found.append(HeaderParser().parsestr(text_of(part).lstrip()))
    if found:
        return found
    text = all_text(msg)
    for mark in ORIGINAL_MARK.finditer(text):
        block = text[mark.end() :].lstrip("\r\n-= \t")
        if re.match(r"[\w-]+:\s", block):
            parsed = HeaderParser().parsestr(block)
            if parsed.keys():
                return [parsed]
    return []
