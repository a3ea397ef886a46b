"""Shared field types and the translation of pydantic errors into located problems."""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from newsletter.address_syntax import AddressError, normal_address
from newsletter.errors import PROBLEM_CODES, Problem


class StrictModel(BaseModel):
    """Frozen, and an unknown (misspelt) field is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _invalid(code: str, message: str) -> PydanticCustomError:
    """A validation error that carries its problem code (see newsletter.errors.PROBLEM_CODES)."""
    return PydanticCustomError(code, "{message}", {"message": message})


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(
            "bad-link", f"'{value}' is not an http(s) URL; write it as https://host/path"
        )
    return value


def _email(value: str) -> str:
    try:
        return normal_address(value)
    except AddressError as exc:
        raise _invalid("bad-email", f"'{value}' is not a valid email address: {exc}") from None


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise _invalid("missing-field", "must not be empty")
    return value


_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def unsafe_for_header(value: str) -> bool:
    """True if `value` holds a line break or control character (a header injection)."""
    return _HEADER_UNSAFE.search(value) is not None


def _single_line(value: str) -> str:
    if unsafe_for_header(value):
        raise _invalid(
            "header-injection",
            "must be a single line with no control characters (it goes into a mail header)",
        )
    return value


_DOMAIN = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")


def _domain(value: str) -> str:
    domain = value.strip().lower().removesuffix(".")
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise ValueError(
            f"'{value}' is not a domain name; write it like bounces.example.org "
            "(an international name in its xn-- form)"
        )
    return domain


def _iso_date(value: object) -> object:
    """A date written as YYYY-MM-DD (YAML may give it already as a date)."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise _invalid("bad-date", f"'{value}' is not a date; write it as YYYY-MM-DD") from None


def _rate(value: str) -> str:
    try:
        parse_rate(value)
    except ValueError as exc:
        raise _invalid("bad-rate", str(exc)) from None
    return value


def parse_rate(value: str) -> float:
    """Messages per second from '10/s', '600/m' or '3600/h'."""
    number, _, unit = value.strip().partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600}.get(unit.strip())
    try:
        count = float(number)
    except ValueError:
        count = -1
    if seconds is None or not 0 < count < math.inf:  # nan and inf are not rates
        raise ValueError(f"'{value}' is not a rate; write it like 10/s, 600/m or 3600/h")
    return count / seconds


#: An absolute http or https URL, kept exactly as written.
WebUrl = Annotated[str, AfterValidator(_web_url)]
#: An email address, checked for syntax (no DNS) and normalised.
Email = Annotated[str, AfterValidator(_email)]
#: A domain name such as 'bounces.example.org', lower-cased.
Domain = Annotated[str, AfterValidator(_domain)]
#: A sending rate such as '10/s' or '3600/h'.
Rate = Annotated[str, AfterValidator(_rate)]
#: A calendar date written YYYY-MM-DD.
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
#: Text that must say something.
Text = Annotated[str, AfterValidator(_text)]
#: Text that must say something and fit on one header line.
HeaderText = Annotated[str, AfterValidator(_text), AfterValidator(_single_line)]


#: Fields whose absence has a code of its own (`check` tells how to fill each in).
_MISSING_CODES = {
    "alt": "missing-alt",
    "subject": "missing-subject",
    "preheader": "missing-preheader",
    "postal_address": "missing-postal-address",
}


def problems_from(
    error: ValidationError,
    path: Path,
    known_fields: Callable[[tuple[str | int, ...]], Sequence[str]] = lambda loc: (),
    line_of: Callable[[tuple[str | int, ...]], int | None] = lambda loc: None,
) -> list[Problem]:
    """One Problem per pydantic error, naming the field, its line and what to do."""
    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(part) for part in loc)
        kind = err["type"]
        code = kind if kind in PROBLEM_CODES else "invalid-field"
        if kind == "missing":
            message, code = "required field is missing; add it", "missing-field"
        elif kind == "extra_forbidden":
            code = "unknown-field"
            name = str(loc[-1])
            guess = difflib.get_close_matches(name, known_fields(loc[:-1]), n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else "remove it or check its spelling"
            message = f"unknown field; {hint}"
        else:
            message = err["msg"].removeprefix("Value error, ")
        if code == "missing-field":
            code = _MISSING_CODES.get(str(loc[-1]), code)
        problems.append(Problem(message, path=path, line=line_of(loc), field=field, code=code))
    return problems
