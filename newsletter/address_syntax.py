"""Email address syntax and normal form, with email-validator's rules, fast for plain addresses.

email-validator is the authority (syntax, IDNA, Unicode normalisation, special-use domains; no
DNS). Running it costs tens of microseconds per address, which dominates a large import, so an
address in the plain ASCII shape nearly all lists hold (dot-atom local part, letter-only
top-level domain, no Punycode or reserved name) is accepted by one regular expression instead:
for such an address email-validator's answer is known, the address itself with its domain in
lower case (and the local part too for a role account such as postmaster). Anything else goes
to email-validator. tests/test_address_syntax.py checks that both paths agree on a varied list
of addresses.
"""

from __future__ import annotations

import functools
import re

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(rf"({_DOT_ATOM})@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})")
_PLAIN_LOCAL = re.compile(_DOT_ATOM)
#: An ASCII character that no domain name holds (an internationalised one may hold others).
_NOT_IN_DOMAIN = re.compile(r"[\x00-\x2c/\x3a-\x40\x5b-\x60\x7b-\x7f]")
#: email-validator's length limits (RFC 5321): the whole address and its local part.
_MAX_ADDRESS, _MAX_LOCAL = 254, 64
#: email-validator refuses these domains and their subdomains (its SPECIAL_USE_DOMAIN_NAMES);
#: any domain merely ending in one of them takes the slow path, which decides exactly.
_RESERVED_ENDINGS = ("arpa", "invalid", "local", "localhost", "onion", "test")
#: email-validator writes these local parts in lower case whatever case they came in
#: (its CASE_INSENSITIVE_MAILBOX_NAMES: role accounts; 'Info@…' is 'info@…').
ROLE_MAILBOXES = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster"}
    | {"hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"}
)


class AddressError(ValueError):
    """Not a valid email address; the message says why (email-validator's wording)."""


def plain_address(address: str) -> str | None:
    """The normal form of an address in the plain shape, or None to ask email-validator."""
    match = _PLAIN.fullmatch(address)
    if match is None or len(address) > _MAX_ADDRESS:
        return None
    local, domain = match.groups()
    domain = domain.lower()
    if len(local) > _MAX_LOCAL or "--" in domain or domain.endswith(_RESERVED_ENDINGS):
        return None
    if local.lower() in ROLE_MAILBOXES:
        local = local.lower()
    return f"{local}@{domain}"


@functools.lru_cache(maxsize=1024)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """email-validator's normal and ASCII (IDNA) forms of a domain, or None if it refuses it.
    What it says of a domain does not depend on the local part, so it is asked once a domain."""
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain


def plain_local_address(address: str) -> str | None:
    """The normal form of an address with a plain local part and a domain that email-validator
    accepts (an internationalised one, say), from its verdict on that domain; None to ask it
    about the whole address (a refused domain, or a length near the limits)."""
    local, _, domain = address.rpartition("@")
    if len(local) > _MAX_LOCAL or not _PLAIN_LOCAL.fullmatch(local):
        return None
    forms = None if _NOT_IN_DOMAIN.search(domain) else _domain_forms(domain)
    if forms is None:
        return None
    if local.lower() in ROLE_MAILBOXES:
        local = local.lower()
    normal = f"{local}@{forms[0]}"
    # email-validator's length check: the address as given, normalised, and in IDNA ASCII
    for form in (address, normal, f"{local}@{forms[1]}"):
        if len(form.encode()) > _MAX_ADDRESS:
            return None
    return normal


def normal_address(address: str) -> str:
    """The address in email-validator's normal form (syntax only); AddressError if invalid."""
    known = plain_address(address) or plain_local_address(address)
    if known is not None:
        return known
    from email_validator import EmailNotValidError, validate_email  # the rare, slow path

    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
