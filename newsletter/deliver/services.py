"""Exports of the services people leave, read as rows to import: Mailchimp, Substack,
Buttondown, listmonk, and our own (generic) CSV.

Each format is recognised by its header row and maps one record (cells keyed by normalised
column names: 'Email Address' is `email`, 'UNSUB_TIME' is `unsub_time`) to an `ImportRow`
with the status the service gave the person. Whoever unsubscribed, was cleaned after
bouncing, or was blocked there arrives opted out, with the original time and reason, never
active. Names, consent times and IPs are kept as attributes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from newsletter.deliver.db import stored_time
from newsletter.deliver.subscribers import ImportRow, Status
from newsletter.errors import Problem, SubscriberError

Cells = Mapping[str, str]
#: Columns the generic format reads itself (everything else is kept as an attribute).
GENERIC_COLUMNS = frozenset(
    {"email", "first_name", "last_name", "tags", "status", "status_changed_at", "attributes"}
)
_GENERIC_KNOWN = GENERIC_COLUMNS | {""}  # "" is a column without a header: left out


@dataclass(frozen=True)
class Format:
    """One export format: how to recognise its header and read one of its records."""

    name: str
    matches: Callable[[frozenset[str]], bool]
    row: Callable[[int, Cells], ImportRow]


def timestamp(cell: str) -> str | None:
    """A service's time (ISO 8601, 'YYYY-MM-DD HH:MM:SS', with or without a zone; UTC when
    none is given) as the database stores it, or None when the cell is empty or unreadable."""
    text = cell.strip().replace("Z", "+00:00")
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return stored_time(moment)


def _truthy(cell: str) -> bool:
    return cell.strip().lower() in ("true", "t", "yes", "1")


def _attributes(cells: Cells, used: frozenset[str]) -> dict[str, str]:
    """Every other non-empty cell, kept under its normalised column name."""
    return {
        name: cell.strip()
        for name, cell in cells.items()
        if name and name not in used and cell.strip()
    }


def _split_name(full: str) -> tuple[str, str]:
    first, _, last = full.strip().partition(" ")
    return first, last.strip()


def _split_tags(cell: str) -> list[str]:
    """The tags of a cell that separates them by ',' or '|'."""
    return cell.replace(",", "|").split("|")  # a regular expression's split takes twice as long


def _require_email(cells: Cells) -> str:
    email = cells.get("email", "").strip()
    if not email:
        raise SubscriberError(Problem("the email cell is empty", code="bad-email"))
    return email


# --- generic: our own export, or any CSV with an email column ----------------------------


def _attributes_cell(cell: str) -> dict[str, str]:
    try:
        value = json.loads(cell)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise SubscriberError(Problem(f"attributes {cell!r} is not a JSON object", code="bad-csv"))
    return {str(key): str(item) for key, item in value.items()}


def _status_cell(cell: str) -> Status:
    if not cell:
        return Status.ACTIVE
    try:
        return Status(cell.strip().lower() or Status.ACTIVE)
    except ValueError:
        known = ", ".join(status.value for status in Status)
        raise SubscriberError(
            Problem(f"status '{cell}' is not one of {known}", code="bad-csv")
        ) from None


def _generic(line: int, cells: Cells) -> ImportRow:
    """Our own columns; the row comes back validated (this is the bulk path: one step)."""
    attributes = _attributes_cell(cells["attributes"]) if cells.get("attributes") else {}
    for name in cells.keys() - _GENERIC_KNOWN:  # any other column is an attribute
        attributes[name] = cells[name].strip()
    status = _status_cell(cells.get("status", ""))
    return ImportRow.checked_row(
        line,
        _require_email(cells),
        cells.get("first_name", ""),
        cells.get("last_name", ""),
        _split_tags(cells.get("tags", "")),
        attributes,
        status,
        status_at=timestamp(cells.get("status_changed_at", ""))
        if status != Status.ACTIVE
        else None,
    )


# --- Mailchimp: three files per audience (subscribed, unsubscribed, cleaned) -------------

_MAILCHIMP_OWN = frozenset(
    {"email", "first_name", "last_name", "tags", "unsub_time", "unsub_reason"}
    | {"unsub_reason_other", "clean_time"}
)


def _mailchimp_tags(cell: str) -> tuple[str, ...]:
    """Mailchimp writes tags as `"Heroes","Planet"` inside one cell."""
    if not cell.strip():
        return ()
    return tuple(tag.strip() for tag in next(csv.reader([cell], skipinitialspace=True)))


def _mailchimp(line: int, cells: Cells) -> ImportRow:
    status, reason, at = Status.ACTIVE, "", None
    if "clean_time" in cells:
        status, at = Status.BOUNCED, timestamp(cells["clean_time"])
        campaign = cells.get("clean_campaign_title", "").strip()
        reason = "cleaned by Mailchimp (undeliverable)" + (
            f" after '{campaign}'" if campaign else ""
        )
    elif "unsub_time" in cells:
        status, at = Status.UNSUBSCRIBED, timestamp(cells["unsub_time"])
        why = cells.get("unsub_reason_other", "").strip() or cells.get("unsub_reason", "").strip()
        reason = "unsubscribed at Mailchimp" + (f": {why}" if why else "")
    return ImportRow(
        line=line,
        email=_require_email(cells),
        first_name=cells.get("first_name", ""),
        last_name=cells.get("last_name", ""),
        tags=_mailchimp_tags(cells.get("tags", "")),
        attributes=_attributes(cells, _MAILCHIMP_OWN),
        status=status,
        status_reason=reason,
        status_at=at,
    )


# --- Substack ------------------------------------------------------------------------------

_SUBSTACK_OWN = frozenset({"email", "name", "email_disabled"})


def _substack(line: int, cells: Cells) -> ImportRow:
    first, last = _split_name(cells.get("name", ""))
    disabled = _truthy(cells.get("email_disabled", ""))
    return ImportRow(
        line=line,
        email=_require_email(cells),
        first_name=first,
        last_name=last,
        attributes=_attributes(cells, _SUBSTACK_OWN),
        status=Status.UNSUBSCRIBED if disabled else Status.ACTIVE,
        status_reason="emails turned off at Substack" if disabled else "",
    )


# --- Buttondown ----------------------------------------------------------------------------

_BUTTONDOWN_TYPES = {
    "unactivated": Status.PENDING,
    "unsubscribed": Status.UNSUBSCRIBED,
    "removed": Status.UNSUBSCRIBED,
    "spammy": Status.UNSUBSCRIBED,
    "blocked": Status.UNSUBSCRIBED,
    "undeliverable": Status.BOUNCED,
    "complained": Status.COMPLAINED,
}
_BUTTONDOWN_OWN = frozenset(
    {"email", "tags", "subscriber_type", "type", "unsubscription_date", "unsubscription_reason"}
    | {"metadata"}
)


def _buttondown_tags(cell: str) -> tuple[str, ...]:
    text = cell.strip()
    if text.startswith("["):
        try:
            return tuple(str(tag) for tag in json.loads(text))
        except json.JSONDecodeError:
            pass
    return tuple(_split_tags(text))


def _buttondown(line: int, cells: Cells) -> ImportRow:
    kind = (cells.get("subscriber_type") or cells.get("type") or "").strip().lower()
    status = _BUTTONDOWN_TYPES.get(kind, Status.ACTIVE)
    at = timestamp(cells.get("unsubscription_date", ""))
    if at is not None and status == Status.ACTIVE:
        status = Status.UNSUBSCRIBED
    reason = ""
    if status != Status.ACTIVE and status != Status.PENDING:
        why = cells.get("unsubscription_reason", "").strip()
        reason = f"{kind or 'unsubscribed'} at Buttondown" + (f": {why}" if why else "")
    attributes = _attributes(cells, _BUTTONDOWN_OWN)
    metadata = cells.get("metadata", "").strip()
    if metadata:
        try:
            loaded = json.loads(metadata)
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            attributes.update({str(k): str(v) for k, v in loaded.items() if v not in (None, "")})
        elif metadata not in ("{}", "null"):
            attributes["metadata"] = metadata
    return ImportRow(
        line=line,
        email=_require_email(cells),
        first_name=attributes.pop("first_name", ""),
        last_name=attributes.pop("last_name", ""),
        tags=_buttondown_tags(cells.get("tags", "")),
        attributes=attributes,
        status=status,
        status_reason=reason,
        status_at=at,
    )


# --- listmonk ------------------------------------------------------------------------------

_LISTMONK_STATUS = {"blocklisted": Status.UNSUBSCRIBED, "disabled": Status.UNSUBSCRIBED}
_LISTMONK_OWN = frozenset({"email", "name", "attributes", "status", "uuid", "updated_at"})


def _listmonk(line: int, cells: Cells) -> ImportRow:
    raw = cells.get("status", "").strip().lower()
    status = _LISTMONK_STATUS.get(raw, Status.ACTIVE)
    attributes = _attributes(cells, _LISTMONK_OWN)
    if cells.get("attributes", "").strip() not in ("", "{}"):
        try:
            loaded = json.loads(cells["attributes"])
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            attributes.update({str(k): json.dumps(v) if isinstance(v, dict | list) else str(v)
                               for k, v in loaded.items()})  # fmt: skip
    first, last = _split_name(cells.get("name", ""))
    return ImportRow(
        line=line,
        email=_require_email(cells),
        first_name=first,
        last_name=last,
        attributes=attributes,
        status=status,
        status_reason=f"{raw} in listmonk" if status != Status.ACTIVE else "",
        status_at=timestamp(cells.get("updated_at", "")) if status != Status.ACTIVE else None,
    )


FORMATS: dict[str, Format] = {
    "mailchimp": Format(
        "mailchimp",
        lambda cols: bool({"optin_time", "confirm_time", "leid", "euid", "member_rating"} & cols),
        _mailchimp,
    ),
    "substack": Format(
        "substack", lambda cols: bool({"email_disabled", "active_subscription"} & cols), _substack
    ),
    "buttondown": Format(
        "buttondown",
        lambda cols: bool(
            {"subscriber_type", "unsubscription_date", "referrer_url", "secondary_id"} & cols
        ),
        _buttondown,
    ),
    "listmonk": Format("listmonk", lambda cols: {"uuid", "name", "status"} <= cols, _listmonk),
    "generic": Format("generic", lambda cols: True, _generic),
}


def detect(columns: frozenset[str]) -> Format:
    """The first format whose header this is (the generic one otherwise)."""
    return next(fmt for fmt in FORMATS.values() if fmt.matches(columns))
