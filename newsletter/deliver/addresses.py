"""Email addresses as they travel: IDNA domains, and whether a copy needs SMTPUTF8.

Subscribers' addresses are stored as email-validator normalises them, with a domain in Unicode
(`élodie@bücher.example`). On the wire the domain is written in IDNA (`xn--bcher-kva.example`,
RFC 5890), which every server understands; a local part beyond ASCII can only travel with the
SMTPUTF8 extension (RFC 6531) and UTF-8 headers (RFC 6532).
"""

from __future__ import annotations

from urllib.parse import quote

import idna

_MAILTO_SAFE = ".!$'*+-=^_`{|}~"  # atext that needs no percent-encoding in a mailto URI


def ascii_domain(domain: str) -> str:
    """`domain` in IDNA (A-labels); unchanged if it is ASCII already or cannot be encoded."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain  # left in UTF-8: only a relay with SMTPUTF8 can take it


def wire_address(address: str) -> str:
    """`address` with its domain in IDNA, for the envelope and the headers."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}"


def needs_smtputf8(*addresses: str) -> bool:
    """Whether any of these wire addresses (see `wire_address`) is beyond ASCII."""
    return not all(address.isascii() for address in addresses)


def mailto(address: str) -> str:
    """A `mailto:` URI for `address` (RFC 6068): local part percent-encoded, domain in IDNA."""
    local, _, domain = address.rpartition("@")
    return f"mailto:{quote(local, safe=_MAILTO_SAFE)}@{ascii_domain(domain)}"
