"""Per-subscriber email messages, prepared once per issue and filled per copy.

Building each copy with `email.message.EmailMessage` costs milliseconds; here the message's
structure and the quoted-printable encoding of everything that does not change are made once,
and each copy only encodes and joins its own pieces (names, address, links, headers). Every
copy still parses back with Python's `email` package to exactly the filled HTML and text.

The result is `multipart/alternative` (text, then HTML) with From, To, Reply-To, Subject,
Date, Message-ID, MIME-Version, List-Id, List-Unsubscribe (https and mailto) and
List-Unsubscribe-Post (RFC 8058). With `[sending] bounce_domain`, each subscriber's copy
also carries its signed delivery token in `X-Newsletter-Delivery`, and its envelope sender is
`bounces+<token>@bounce_domain` (VERP), so a bounce names the copy it is about.
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import html
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from slugify import slugify

from newsletter.analytics.links import LinkSigner, add_open_pixel, track_links
from newsletter.compose.build import BuiltIssue
from newsletter.compose.mergetags import MergeTemplate
from newsletter.config import Config, read_dkim_key
from newsletter.deliver.addresses import ascii_domain, mailto
from newsletter.deliver.dkimsign import SigningKey, load_signing_key, signature_header
from newsletter.deliver.headers import CRLF, address_header, header_line, named_header
from newsletter.deliver.tokens import Signer
from newsletter.errors import ConfigError, HeaderInjectionError, Problem
from newsletter.inbound.verp import HEADER, DeliveryTokens, verp_address
from newsletter.validation import unsafe_for_header


def header_safe(value: str, what: str) -> str:
    """`value` unchanged, or HeaderInjectionError if it holds CR, LF or another control char."""
    if unsafe_for_header(value):
        raise HeaderInjectionError(
            Problem(
                f"{what} {value!r} contains a line break or control character; remove it",
                code="header-injection",
            )
        )
    return value


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, a leading '.' encoded (no dot-stuffing needed)."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    encoded = encoded.replace(b"\n.", b"\n=2E")
    if encoded.startswith(b"."):
        encoded = b"=2E" + encoded[1:]
    return encoded.replace(b"\n", CRLF)


def _chunk(text: str) -> bytes:
    """An encoded piece that can be joined to any other: it ends on a (soft) line break."""
    encoded = _qp(text)
    return encoded if not encoded or encoded.endswith(CRLF) else encoded + b"=" + CRLF


class _EncodedPart:
    """One MIME part's body: encoded literals, filled with encoded values per copy."""

    def __init__(self, template: MergeTemplate, escape: Callable[[str], str]) -> None:
        self._literals = [_chunk(literal) for literal in template.literals]
        self._tags = template.tags
        self._escape = escape

    def fill(self, values: Mapping[str, str]) -> list[bytes]:
        parts = [self._literals[0]]
        for tag, literal in zip(self._tags, self._literals[1:], strict=True):
            parts.append(_chunk(self._escape(values.get(tag.field) or tag.default)))
            parts.append(literal)
        return parts


@dataclass(frozen=True)
class DkimKey:
    """What DKIM signing needs: selector, signing domain and the private key (RSA in PEM, or
    Ed25519 in PEM or as dkimpy's base64 seed, for RFC 8463 signatures). A key that cannot
    sign is a ConfigError at once."""

    selector: str
    domain: str
    private_key: bytes

    def __post_init__(self) -> None:
        try:
            key = load_signing_key(self.private_key)
        except ValueError as exc:
            problem = Problem(f"the DKIM key is {exc}", field="dkim.key_file", code="bad-dkim-key")
            raise ConfigError(problem) from None
        object.__setattr__(self, "_key", key)

    _HEADERS = (
        b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
        b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
    )  # fmt: skip

    @classmethod
    def from_config(cls, config: Config) -> DkimKey | None:
        """The configured key (read and checked by `read_dkim_key`), or None without [dkim]."""
        key = read_dkim_key(config)
        if config.dkim is None or key is None:
            return None
        domain = config.dkim.domain or config.sender_domain
        return cls(config.dkim.selector, domain, key)

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front (relaxed/simple, rsa- or ed25519-sha256)."""
        key: SigningKey = self._key  # type: ignore[attr-defined]
        selector, domain = self.selector.encode(), ascii_domain(self.domain).encode()
        return signature_header(data, selector, domain, key, self._HEADERS) + data


@dataclass(frozen=True)
class Recipient:
    """Who one copy goes to. `subscriber_id` is None for test sends."""

    email: str
    first_name: str = ""
    last_name: str = ""
    subscriber_id: int | None = None
    public_id: str = ""  # what the links name; empty in test copies, whose links name nobody

    @property
    def name(self) -> str:
        """The full name for the To header."""
        return f"{self.first_name} {self.last_name}".strip()


def copy_values(recipient: Recipient, token: str, base_url: str, web_url: str) -> dict[str, str]:
    """The merge-tag values of one recipient's copy, its links carrying `token`."""
    base = base_url.rstrip("/")
    return {
        "subscriber.first_name": recipient.first_name,
        "subscriber.last_name": recipient.last_name,
        "subscriber.email": recipient.email,
        "unsubscribe_url": f"{base}/unsubscribe/{token}",
        "preferences_url": f"{base}/preferences/{token}",
        "web_url": web_url,
    }


@dataclass(frozen=True)
class Outgoing:
    """One copy, ready for a transport: `sender` is its envelope sender (MAIL FROM)."""

    recipient: str
    message_id: str
    data: bytes
    sender: str


def measured(built: BuiltIssue, config: Config, signer: Signer) -> BuiltIssue:
    """The issue with its links through the click redirect and/or the open pixel, as the
    config asks; neither carries anything about the reader."""
    html, text = built.html, built.text
    if config.analytics.clicks:
        links = LinkSigner(signer.subkey("click"))
        html, text = track_links(
            html, text, issue=built.slug, base_url=config.base_url, signer=links
        )
    if config.analytics.opens:
        html = add_open_pixel(html, config.base_url, built.slug, LinkSigner(signer.subkey("open")))
    return replace(built, html=html, text=text)


class MessageFactory:
    """Prepared once per issue; `render(recipient)` makes each subscriber's copy."""

    def __init__(
        self,
        built: BuiltIssue,
        config: Config,
        signer: Signer,
        *,
        test: bool = False,
        dkim_key: DkimKey | None = None,
    ) -> None:
        if config.analytics.clicks or config.analytics.opens:
            built = measured(built, config, signer)
        self._slug = built.slug
        self._signer = signer
        self._base = config.base_url.rstrip("/")
        self._web_url = built.web_url
        self._domain = ascii_domain(config.sender_domain)
        self._test = test
        self._subject = MergeTemplate(("[TEST] " if test else "") + built.subject)
        for what, value in (("the subject", built.subject), ("the sender name", config.name)):
            header_safe(value, what)
        boundary = f"=_nl{secrets.token_hex(12)}"
        unsubscribe_to = config.sending.unsubscribe_mailto or config.sender.address
        self._mailto = f"{mailto(unsubscribe_to)}?subject=unsubscribe%20"
        list_key = f"{slugify(config.name) or 'newsletter'}.{self._domain}"
        self._fixed = b"".join(
            [
                address_header("From", config.sender.name, config.sender.address),
                address_header("Reply-To", "", config.sender.reply_to)
                if config.sender.reply_to
                else b"",
                named_header("List-Id", config.name, list_key),
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" + CRLF,
                b"MIME-Version: 1.0" + CRLF,
                f'Content-Type: multipart/alternative; boundary="{boundary}"'.encode() + CRLF,
            ]
        )
        part = (
            'Content-Type: text/{}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._open_text = f"\r\n--{boundary}\r\n{part.format('plain')}".encode()
        self._open_html = f"\r\n--{boundary}\r\n{part.format('html')}".encode()
        self._close = f"\r\n--{boundary}--\r\n".encode()
        self._text = _EncodedPart(MergeTemplate(built.text), str)
        self._html = _EncodedPart(MergeTemplate.for_html(built.html), html.escape)
        self._date = ("", 0)
        self._dkim = dkim_key
        self._sender = config.sender.address
        bounce_domain = config.sending.bounce_domain
        self._bounce_domain = ascii_domain(bounce_domain) if bounce_domain else ""
        self._tokens = DeliveryTokens(signer.subkey("verp"), built.slug)

    def values(self, recipient: Recipient, token: str) -> dict[str, str]:
        """The merge-tag values of one copy, its links carrying `token`."""
        return copy_values(recipient, token, self._base, self._web_url)

    def _now(self) -> str:
        second = int(time.time())
        if self._date[1] != second:
            self._date = (email.utils.formatdate(second, usegmt=True), second)
        return self._date[0]

    def message_id(self, recipient: Recipient) -> str:
        """Stable per issue and subscriber, so a resent copy can be recognised as the same."""
        if self._test or recipient.subscriber_id is None:
            return f"<{self._slug}.test.{secrets.token_hex(8)}@{self._domain}>"
        digest = hashlib.sha256(f"{self._slug}\0{recipient.email}".encode()).hexdigest()[:12]
        return f"<{self._slug}.{recipient.subscriber_id}.{digest}@{self._domain}>"

    def envelope(self, recipient: Recipient) -> tuple[str, bytes]:
        """The copy's envelope sender, and its delivery header line (empty without a token).

        Without a bounce domain: the sender's address. With one: `bounces+<token>@domain` for
        a subscriber's copy, plain `bounces@domain` for a test copy (it names nobody).
        """
        if not self._bounce_domain:
            return self._sender, b""
        if self._test or recipient.subscriber_id is None:
            return f"bounces@{self._bounce_domain}", b""
        token = self._tokens(recipient.subscriber_id)
        return verp_address(token, self._bounce_domain), f"{HEADER}: {token}\r\n".encode()

    def render(self, recipient: Recipient) -> Outgoing:
        """The complete message for one recipient, as bytes with CRLF line ends."""
        header_safe(recipient.name, "the subscriber name")
        header_safe(recipient.email, "the subscriber address")
        token = self._signer.subscriber_token(recipient.public_id, self._slug)
        values = self.values(recipient, token)
        message_id = self.message_id(recipient)
        mailto = f"{self._mailto}{quote(token, safe='')}"
        unsubscribe = f"<{values['unsubscribe_url']}>,\r\n <{mailto}>"
        sender, delivery = self.envelope(recipient)
        data = b"".join(
            [
                address_header("To", recipient.name, recipient.email),
                header_line("Subject", self._subject.fill(values)),
                f"Date: {self._now()}\r\nMessage-ID: {message_id}\r\n".encode("ascii"),
                f"List-Unsubscribe: {unsubscribe}".encode() + CRLF,
                delivery,
                self._fixed,
                self._open_text,
                *self._text.fill(values),
                self._open_html,
                *self._html.fill(values),
                self._close,
            ]
        )
        if self._dkim:
            data = self._dkim.sign(data)
        return Outgoing(recipient.email, message_id, data, sender)
