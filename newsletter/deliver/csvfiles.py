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

Reading streams: `csv_records` yields the file's plain rows (cells by column name) one at a
time, `import_rows_from` turns plain rows into validated ImportRows, so a million-row file
never sits in memory and other layouts can map their columns in between.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, NamedTuple, TextIO

from newsletter.deliver.subscribers import ImportRow, Status, Subscriber, SubscriberError
from newsletter.errors import Problem

COLUMNS = ("email", "first_name", "last_name", "tags", "status", "status_changed_at", "attributes")
_KNOWN = frozenset([*COLUMNS, ""])  # "" is a column without a header: left out
_ALIASES = {
    "email_address": "email",
    "e_mail": "email",
    "firstname": "first_name",
    "lastname": "last_name",
}
_TAG_SPLIT = re.compile(r"[,|]")


def _column(header: str) -> str:
    name = re.sub(r"[\s-]+", "_", header.strip().lower())
    return _ALIASES.get(name, name)


def _delimiter(first: str) -> str:
    """';' if the first non-blank line has more semicolons than commas, else ','."""
    return ";" if first.count(";") > first.count(",") else ","


def _header(record: list[str], path: Path, line: int) -> list[str]:
    names = [_column(cell) for cell in record]
    if "email" not in names:
        found = ", ".join(repr(cell.strip()) for cell in record)
        message = f"has no email column; the columns found are: {found}"
        raise SubscriberError(Problem(message, path=path, line=line))
    for name in names:
        if name and names.count(name) > 1:
            message = f"the column '{name}' appears twice; keep one"
            raise SubscriberError(Problem(message, path=path, line=line))
    return names


def _attributes_cell(cell: str) -> dict[str, str]:
    try:
        value = json.loads(cell)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise SubscriberError(Problem(f"attributes {cell!r} is not a JSON object"))
    return {str(key): str(item) for key, item in value.items()}


def _status_cell(cell: str) -> Status:
    if not cell:
        return Status.ACTIVE
    try:
        return Status(cell.strip().lower() or Status.ACTIVE)
    except ValueError:
        known = ", ".join(status.value for status in Status)
        raise SubscriberError(Problem(f"status '{cell}' is not one of {known}")) from None


class Record(NamedTuple):
    """One data row of a file: its first physical line and its cells by column name."""

    line: int
    cells: dict[str, str]


def _import_row(record: Record) -> ImportRow:
    line, cells = record.line, record.cells
    if not cells["email"].strip():
        raise SubscriberError(Problem("the email cell is empty"))
    attributes = _attributes_cell(cells["attributes"]) if cells.get("attributes") else {}
    for name in cells.keys() - _KNOWN:  # any other column is an attribute
        attributes[name] = cells[name].strip()
    return ImportRow.checked_row(
        line,
        cells["email"],
        cells.get("first_name", ""),
        cells.get("last_name", ""),
        _TAG_SPLIT.split(cells.get("tags", "")),
        attributes,
        _status_cell(cells.get("status", "")),
    )


def _text_lines(file: BinaryIO, path: Path) -> Iterator[str]:
    """The file's lines decoded one by one, so a byte that is not UTF-8 is located exactly."""
    for number, raw in enumerate(file, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            message = "is not UTF-8 text; save it as 'CSV UTF-8' and try again"
            raise SubscriberError(Problem(message, path=path, line=number)) from None


def _records(
    file: BinaryIO, path: Path, lines: Iterable[str], delimiter: str, problems: list[Problem]
) -> Iterator[Record]:
    with file:
        reader = csv.reader(lines, delimiter=delimiter)
        header: list[str] | None = None
        start = 1
        try:
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not "".join(cells).strip():  # a blank line
                    continue
                if header is None:
                    header = _header(cells, path, line)
                elif len(cells) != len(header):
                    message = f"has {len(cells)} fields but the header has {len(header)}"
                    problems.append(Problem(message, path=path, line=line))
                else:
                    yield Record(line, dict(zip(header, cells, strict=True)))
        except csv.Error as exc:
            message = f"is not valid CSV: {exc}"
            raise SubscriberError(Problem(message, path=path, line=reader.line_num)) from None


def csv_records(path: Path, problems: list[Problem]) -> Iterator[Record]:
    """Stream the data rows of a subscriber CSV file, a located problem for each malformed one.

    The header is read before this returns: a file that cannot be read, is not UTF-8 up to its
    header, or has no header or no email column raises SubscriberError naming it at once.
    Later in the file, a line that is not UTF-8 or not CSV raises it while streaming.
    """
    try:
        file = path.open("rb")
    except OSError as exc:
        raise SubscriberError(Problem(f"cannot read it: {exc.strerror}", path=path)) from None
    try:
        lines = _text_lines(file, path)
        head = []  # the blank lines before the header, and the header
        for text in lines:
            head.append(text)
            if text.strip():
                break
        else:
            raise SubscriberError(
                Problem("is empty; it needs a header line with an email column", path)
            )
        records = _records(file, path, itertools.chain(head, lines), _delimiter(text), problems)
        first_record = next(records, None)  # reads the header, and the first row if any
    except BaseException:
        file.close()
        raise
    return itertools.chain([first_record] if first_record else [], records)


def import_rows_from(
    records: Iterable[Record], path: Path, problems: list[Problem]
) -> Iterator[ImportRow]:
    """Validated ImportRows from plain rows; each bad row is a located problem, left out."""
    for record in records:
        try:
            yield _import_row(record)
        except SubscriberError as exc:
            problems.extend(replace(p, path=path, line=record.line) for p in exc.problems)


def read_subscriber_csv(path: Path) -> tuple[list[ImportRow], list[Problem]]:
    """The file's valid rows (validated) and a located problem for each row left out.

    A file that cannot be read, is not UTF-8, is not CSV or has no email column raises
    SubscriberError naming it. For large files, stream with `csv_records` instead.
    """
    problems: list[Problem] = []
    rows = list(import_rows_from(csv_records(path, problems), path, problems))
    return rows, problems


def write_subscriber_csv(subscribers: Iterable[Subscriber], out: TextIO) -> int:
    """Write a header and one row per subscriber (tags joined by '|', attributes as JSON).

    Returns how many subscribers were written. read_subscriber_csv reads the file back.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    written = 0
    for subscriber in subscribers:
        attributes = subscriber.attributes
        writer.writerow(
            (
                subscriber.email,
                subscriber.first_name,
                subscriber.last_name,
                "|".join(subscriber.tags),
                subscriber.status.value,
                subscriber.status_changed_at,
                json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else "",
            )
        )
        written += 1
    return written
