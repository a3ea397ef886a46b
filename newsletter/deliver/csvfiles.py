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

Reading streams: `open_subscriber_csv` reads the header, recognises the export format and
yields validated rows one at a time, so a million-row file never sits in memory.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, TextIO

from newsletter.deliver.services import FORMATS, Format, detect
from newsletter.deliver.subscribers import ImportRow, Subscriber
from newsletter.errors import Problem, SubscriberError

if TYPE_CHECKING:
    from _csv import Reader

COLUMNS = ("email", "first_name", "last_name", "tags", "status", "status_changed_at", "attributes")
_ALIASES = {
    "email_address": "email",
    "e_mail": "email",
    "firstname": "first_name",
    "lastname": "last_name",
}
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


def _delimiter(first: str) -> str:
    """';' if the first non-blank line has more semicolons than commas, else ','."""
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


class Record(NamedTuple):
    """One data row of a file: its first physical line and its cells by column name."""

    line: int
    cells: dict[str, str]


def _text_lines(file: BinaryIO, path: Path) -> Iterator[str]:
    """The file's lines decoded one by one, so a byte that is not UTF-8 is located exactly."""
    for number, raw in enumerate(file, start=1):
        try:
            if b"\0" in raw:  # no text file holds NUL: this is a binary file
                raise UnicodeDecodeError("utf-8", raw, raw.index(b"\0"), len(raw), "NUL")
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            message = "is not UTF-8 text; save it as 'CSV UTF-8' and try again"
            raise SubscriberError(
                Problem(message, path=path, line=number, code="not-utf8")
            ) from None


def _not_csv(exc: csv.Error, path: Path, line: int) -> SubscriberError:
    return SubscriberError(
        Problem(f"is not valid CSV: {exc}", path=path, line=line, code="bad-csv")
    )


def _records(
    file: BinaryIO, reader: Reader, header: list[str], path: Path, problems: list[Problem]
) -> Iterator[Record]:
    """The data rows after the header, each cell as `restore` gives it back."""
    start = reader.line_num + 1
    with file:
        try:
            for cells in reader:
                line, start = start, reader.line_num + 1
                joined = "".join(cells)
                if not joined.strip():  # a blank line
                    continue
                if len(cells) != len(header):
                    message = f"has {len(cells)} fields but the header has {len(header)}"
                    problems.append(Problem(message, path=path, line=line, code="bad-csv"))
                else:
                    restored = map(restore, cells) if "'" in joined else cells  # see neutralise
                    yield Record(line, dict(zip(header, restored, strict=True)))
        except csv.Error as exc:
            raise _not_csv(exc, path, reader.line_num) from None


def csv_records(path: Path, problems: list[Problem]) -> tuple[list[str], Iterator[Record]]:
    """The column names of a subscriber CSV file and the stream of its data rows; a located
    problem goes into `problems` for each malformed row, which is left out.

    The header is read before this returns: a file that cannot be read, is not UTF-8 up to its
    header, or has no header or no email column raises SubscriberError naming it at once.
    Later in the file, a line that is not UTF-8 or not CSV raises it while streaming.
    """
    try:
        file = path.open("rb")
    except OSError as exc:
        raise SubscriberError(
            Problem(f"cannot read it: {exc.strerror}", path=path, code="unreadable-file")
        ) from None
    try:
        lines = _text_lines(file, path)
        head = []  # the blank lines before the header, and the header
        for text in lines:
            head.append(text)
            if text.strip():
                break
        else:
            raise SubscriberError(
                Problem(
                    "is empty; it needs a header line with an email column", path, code="bad-csv"
                )
            )
        reader = csv.reader(itertools.chain(head, lines), delimiter=_delimiter(text))
        try:
            cells = next(cells for cells in reader if "".join(cells).strip())
        except csv.Error as exc:
            raise _not_csv(exc, path, reader.line_num) from None
        header = _header(cells, path, len(head))
    except BaseException:
        file.close()
        raise
    return header, _records(file, reader, header, path, problems)


def import_rows_from(
    records: Iterable[Record], kind: Format, path: Path, problems: list[Problem]
) -> Iterator[ImportRow]:
    """Validated ImportRows from a file's rows in format `kind`; each bad row is a located
    problem, left out."""
    for record in records:
        try:
            yield kind.row(record.line, record.cells).validated()
        except SubscriberError as exc:
            problems.extend(replace(p, path=path, line=record.line) for p in exc.problems)


def open_subscriber_csv(
    path: Path, format: str | None, problems: list[Problem]
) -> tuple[Iterator[ImportRow], str]:
    """The file's valid rows as a stream (validated; a located problem goes into `problems`
    for each row left out) and the name of the export format (`format`, or recognised from the
    header: see `services`).

    A file that cannot be read, is not UTF-8, is not CSV or has no email column raises
    SubscriberError naming it (while streaming, for a fault past the header).
    """
    header, records = csv_records(path, problems)
    kind = FORMATS[format] if format else detect(frozenset(header))
    return import_rows_from(records, kind, path, problems), kind.name


def write_subscriber_csv(subscribers: Iterable[Subscriber], out: TextIO) -> int:
    """Write a header and one row per subscriber (tags joined by '|', attributes as JSON),
    every cell a spreadsheet would take for a formula neutralised (see `neutralise`).

    Returns how many subscribers were written. open_subscriber_csv reads the file back.
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
