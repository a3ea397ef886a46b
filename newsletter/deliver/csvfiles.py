"""Subscriber CSV files: read into rows to import, each bad row located; written on export.

Reading takes what spreadsheets save: UTF-8 with or without a byte-order mark, commas or
semicolons between fields (whichever the header line has more of), header names in any case
and with stray spaces; spaces and hyphens in them count as underscores ('First Name' is
first_name). The columns:

    email               required ('email address' and 'e-mail' are understood too)
    first_name          optional ('firstname' too)
    last_name           optional ('lastname' too)
    tags                optional; several tags in one cell are separated by ',' or '|'
    status              optional; active or pending (the default is active), or an opted-out
                        status (unsubscribed, bounced, complained) that is recorded as such
    attributes          optional; a JSON object of strings, as export writes it
    status_changed_at   ignored (export writes it for people to read)
    anything else       kept as an attribute named after the (normalised) header

A bad row (an invalid address, a name with a line break, the wrong number of fields) becomes
a Problem with its file and physical line and is left out; the good rows are still returned.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from newsletter.deliver.services import FORMATS, Format, detect
from newsletter.deliver.subscribers import ImportRow, Subscriber
from newsletter.errors import Problem, SubscriberError

COLUMNS = ("email", "first_name", "last_name", "tags", "status", "status_changed_at", "attributes")
_ALIASES = {
    "email_address": "email",
    "e_mail": "email",
    "firstname": "first_name",
    "lastname": "last_name",
}
_TAG_SPLIT = re.compile(r"[,|]")
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """`cell` with a `'` in front if a spreadsheet would run it as a formula. Cells that start
    with quotes before such a character get one more, so `restore` gives back any cell exactly."""
    return f"'{cell}" if cell.lstrip("'").startswith(FORMULA_STARTS) else cell


def restore(cell: str) -> str:
    """The cell `neutralise` was given."""
    neutralised = cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS)
    return cell[1:] if neutralised else cell


def _column(header: str) -> str:
    name = re.sub(r"[\s-]+", "_", header.strip().lower())
    return _ALIASES.get(name, name)


def _delimiter(text: str) -> str:
    """';' if the first non-blank line has more semicolons than commas, else ','."""
    first = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    return ";" if first.count(";") > first.count(",") else ","


def _header(record: list[str], path: Path, line: int) -> list[str]:
    names = [_column(cell) for cell in record]
    if "email" not in names:
        found = ", ".join(repr(cell.strip()) for cell in record)
        message = f"has no email column; the columns found are: {found}"
        raise SubscriberError(Problem(message, path=path, line=line, code="bad-csv"))
    for name in names:
        if name and names.count(name) > 1:
            message = f"the column '{name}' appears twice; keep one"
            raise SubscriberError(Problem(message, path=path, line=line, code="bad-csv"))
    return names


def read_subscriber_csv(
    path: Path, format: str | None = None
) -> tuple[list[ImportRow], list[Problem], str]:
    """The file's valid rows (validated), a located problem for each row left out, and the
    name of the export format (`format`, or recognised from the header: see `services`).

    A file that cannot be read, is not UTF-8, is not CSV or has no email column raises
    SubscriberError naming it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubscriberError(
            Problem(f"cannot read it: {exc.strerror}", path=path, code="unreadable-file")
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = "is not UTF-8 text; save it as 'CSV UTF-8' and try again"
        raise SubscriberError(Problem(message, path=path, line=line, code="not-utf8")) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header: list[str] | None = None
    kind: Format | None = FORMATS[format] if format else None
    rows: list[ImportRow] = []
    problems: list[Problem] = []
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = _header(record, path, line)
                kind = kind or detect(frozenset(header))
            elif len(record) != len(header):
                message = f"has {len(record)} fields but the header has {len(header)}"
                problems.append(Problem(message, path=path, line=line, code="bad-csv"))
            else:
                assert kind is not None
                try:
                    cells = dict(zip(header, map(restore, record), strict=True))
                    rows.append(kind.row(line, cells).validated())
                except SubscriberError as exc:
                    problems.extend(replace(p, path=path, line=line) for p in exc.problems)
    except csv.Error as exc:
        message = f"is not valid CSV: {exc}"
        raise SubscriberError(
            Problem(message, path=path, line=reader.line_num, code="bad-csv")
        ) from None
    if header is None:
        raise SubscriberError(
            Problem("is empty; it needs a header line with an email column", path, code="bad-csv")
        )
    assert kind is not None
    return rows, problems, kind.name


def write_subscriber_csv(subscribers: Iterable[Subscriber], out: TextIO) -> int:
    """Write a header and one row per subscriber (tags joined by '|', attributes as JSON),
    every cell a spreadsheet would take for a formula neutralised (see `neutralise`).

    Returns how many subscribers were written. read_subscriber_csv reads the file back.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    written = 0
    for subscriber in subscribers:
        attributes = subscriber.attributes
        row = (
            subscriber.email,
            subscriber.first_name,
            subscriber.last_name,
            "|".join(subscriber.tags),
            subscriber.status.value,
            subscriber.status_changed_at,
            json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else "",
        )
        writer.writerow(neutralise(cell) for cell in row)
        written += 1
    return written
