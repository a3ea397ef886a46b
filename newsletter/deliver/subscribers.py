"""The subscriber list: who gets the newsletter, with their tags, attributes and status history.

Every address is checked and normalised on the way in, and every name is refused if it holds
a line break or control character (names end up in the To header). People who unsubscribed,
bounced or complained stay in the database so that neither `add` nor an import brings them
back; `remove` erases a person and everything recorded about them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from json.encoder import encode_basestring
from pathlib import Path
from types import TracebackType
from typing import Any

from newsletter.address_syntax import AddressError, normal_address
from newsletter.deliver import db, suppression
from newsletter.deliver.status import Status as Status  # its home for the other modules
from newsletter.errors import Problem, SubscriberError
from newsletter.validation import unsafe_for_header

#: Statuses that mean "do not mail again": neither `add` nor an import revives them.
OPTED_OUT = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})
_OPTED_OUT_HOW = {
    Status.UNSUBSCRIBED: "unsubscribed",
    Status.BOUNCED: "bounced",
    Status.COMPLAINED: "marked the newsletter as spam",
}
#: Control characters (Unicode category Cc) and the line and paragraph separators.
#: Characters that separate tags in a CSV cell, so a tag may not contain them.
TAG_SEPARATORS = ",|"
_TAG_SEPARATOR = re.compile(f"[{re.escape(TAG_SEPARATORS)}]")
#: Attributes as stored: JSON, keys sorted (one encoder, made once: json.dumps makes one a call).
_attributes_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _row_attributes_json(attributes: Mapping[str, str]) -> str:
    """A validated row's attributes (strings only) as `_attributes_json` writes them, without
    the encoder's set-up for each call (most of its cost for the one or two an import row has)."""
    items = sorted(attributes.items())
    pairs = ", ".join(
        [f"{encode_basestring(key)}: {encode_basestring(value)}" for key, value in items]
    )
    return "{" + pairs + "}"


@dataclass(frozen=True)
class Subscriber:
    """One person on the list, as stored."""

    id: int
    email: str
    first_name: str
    last_name: str
    tags: tuple[str, ...]
    attributes: dict[str, str]
    status: Status
    status_reason: str
    status_changed_at: str
    created_at: str
    public_id: str = ""

    @property
    def name(self) -> str:
        """First and last name joined, or '' when neither is known."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True)
class ImportRow:
    """One person to add or update, with the line of the file it came from.

    `status` is the status the source says they have: an opted-out status is recorded (and
    overrides an active one), so re-importing an export never revives anybody.
    `status_reason` and `status_at` say why and when, as the source knew it.
    """

    line: int
    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    status: Status = Status.ACTIVE
    status_reason: str = ""
    status_at: str | None = None
    #: True for a row made by `checked_row`: validating it again returns it as it is.
    checked: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def checked_row(
        cls,
        line: int,
        email: str,
        first_name: str = "",
        last_name: str = "",
        tags: Iterable[str] = (),
        attributes: Mapping[str, str] | None = None,
        status: Status | str = Status.ACTIVE,
        status_reason: str = "",
        status_at: str | None = None,
    ) -> ImportRow:
        """A validated row: the address normalised, the names and tags checked and stripped."""
        email = normalize_email(email)
        if unsafe_for_header(first_name + last_name):  # one search for both, as a rule
            check_header_safe(first_name, "first_name")
            check_header_safe(last_name, "last_name")
        return cls(
            line,
            email,
            first_name.strip(),
            last_name.strip(),
            _clean_tags(tags),
            {str(key): str(value) for key, value in attributes.items()} if attributes else {},
            status if type(status) is Status else Status(status),
            status_reason,
            status_at,
            checked=True,
        )

    def validated(self) -> ImportRow:
        """This row with its address normalised and its names and tags checked and stripped."""
        if self.checked:
            return self
        return ImportRow.checked_row(
            self.line, self.email, self.first_name, self.last_name, self.tags, self.attributes,
            self.status, self.status_reason, self.status_at,
        )  # fmt: skip


@dataclass
class ImportReport:
    """What an import did. `problems` names each skipped row and why, with its line."""

    imported: int = 0
    updated: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False


def normalize_email(value: str) -> str:
    """The address in its normalised form (syntax only, no DNS); SubscriberError if invalid."""
    try:
        return normal_address(value.strip())
    except AddressError as exc:
        raise SubscriberError(
            Problem(f"'{value}' is not a valid email address: {exc}", code="bad-email")
        ) from None


def check_header_safe(value: str, field: str) -> str:
    """`value` unchanged if it holds no line break or control character (header injection)."""
    if unsafe_for_header(value):
        message = f"{field} {value!r} contains a line break or control character; remove it"
        raise SubscriberError(Problem(message, code="header-injection"))
    return value


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags stripped, empty ones dropped, duplicates (ignoring case) removed."""
    tags = tuple(tags)
    joined = "".join(tags)  # one search each for what no tag may hold, as a rule
    if unsafe_for_header(joined) or _TAG_SEPARATOR.search(joined):
        for tag in tags:
            tag = check_header_safe(tag, "tag").strip()
            if _TAG_SEPARATOR.search(tag):
                message = f"tag '{tag}' contains ',' or '|'; split it in two"
                raise SubscriberError(Problem(message, code="bad-subscriber"))
    cleaned: dict[str, str] = {}
    for tag in tags:
        tag = tag.strip()
        if tag:
            cleaned.setdefault(tag.casefold(), tag)
    return tuple(cleaned.values())


class _Refused(SubscriberError):
    """Someone who opted out would be made active again."""

    def __init__(self, subscriber_id: int, email: str, status: Status, changed_at: str) -> None:
        how = _OPTED_OUT_HOW[status]
        super().__init__(
            Problem(f"{email} {how} on {changed_at[:10]}: not resubscribed", code="opted-out")
        )
        self.subscriber_id = subscriber_id
        self.status = status


class _Suppressed(SubscriberError):
    """Someone erased from the list would be added back by an import or `add`."""

    def __init__(self, email: str, status: Status) -> None:
        how = _OPTED_OUT_HOW.get(status, "asked to be erased")
        super().__init__(
            Problem(
                f"{email} {how} and was erased: not added back "
                "(signing up again with double opt-in is the way back)",
                code="opted-out",
            )
        )


def _select(dialect: db.Dialect) -> str:
    """The query for whole subscribers, their tags included (add WHERE...)."""
    return (
        f"SELECT s.*, (SELECT {dialect.tag_list} FROM subscriber_tags"
        " WHERE subscriber_id = s.id) AS tag_list FROM subscribers s"
    )


def _subscriber(row: Any) -> Subscriber:
    tags = row["tag_list"].split("\x1f") if row["tag_list"] else []
    return Subscriber(
        id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        tags=tuple(sorted(tags, key=str.casefold)),
        attributes=json.loads(row["attributes"]),
        status=Status(row["status"]),
        status_reason=row["status_reason"],
        status_changed_at=row["status_changed_at"],
        created_at=row["created_at"],
        public_id=row["public_id"],
    )


def _filters(status: Status | None, tag: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions on `s` (subscribers) and their parameters."""
    conditions: list[str] = []
    params: list[Any] = []
    if status is not None:
        conditions.append("s.status = ?")
        params.append(Status(status).value)
    if tag is not None:
        conditions.append(
            "EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.subscriber_id = s.id AND t.tag = ?)"
        )
        params.append(tag.strip())
    return conditions, params


#: Public ids are drawn from the OS this many at a time during an import (one system call each).
PUBLIC_ID_BLOCK = 256
#: History rows and tags are queued and inserted this many at a time (see SubscriberStore).
WRITE_BATCH = 1000


def _public_ids() -> Iterator[str]:
    """Public ids as `secrets.token_hex(16)` makes them, `PUBLIC_ID_BLOCK` from each read of
    the OS's random source: an import's stream of them, made where it is used."""
    while True:
        block = os.urandom(16 * PUBLIC_ID_BLOCK).hex()
        yield from (block[start : start + 32] for start in range(0, len(block), 32))


class SubscriberStore:
    """The subscribers in the project's database. All SQL about subscribers lives here.

    Within a transaction, the history rows and tags of the people written are queued and
    inserted in batches (one `executemany` per batch rather than one or two calls a person),
    in the order they were queued, before the transaction commits; nothing reads them back
    meanwhile.
    """

    def __init__(self, conn: db.Connection) -> None:
        self.conn = conn
        self._select = _select(conn.dialect)
        self._history_rows: list[tuple[int, str, str, str, str, str]] = []
        self._tag_rows: list[tuple[int, str]] = []

    @classmethod
    def open(cls, location: Path | str, lock_wait: float = 30.0) -> SubscriberStore:
        """The store in the database at `location` (a path or a URL), created and migrated
        as needed."""
        return cls(db.connect(location, lock_wait))

    def __enter__(self) -> SubscriberStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.conn.close()

    @contextmanager
    def _transaction(self, commit: bool = True) -> Iterator[None]:
        """One write transaction; `commit=False` rolls it back at the end (a dry run)."""
        self.conn.begin()
        try:
            yield
            self._write_queued()
        except BaseException:
            self._history_rows.clear()
            self._tag_rows.clear()
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT" if commit else "ROLLBACK")

    def _write_queued(self) -> None:
        """Insert the queued history rows and tags."""
        self.conn.executemany(
            "INSERT INTO status_changes (subscriber_id, status, reason, source, changed_at, issue)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            self._history_rows,
        )
        self.conn.executemany(
            "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
            self._tag_rows,
        )
        self._history_rows.clear()
        self._tag_rows.clear()

    def add(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        tags: Iterable[str] = (),
        attributes: Mapping[str, str] | None = None,
        *,
        source: str = "cli",
    ) -> Subscriber:
        """Add a new active subscriber, or update one who is active or pending.

        As in an import, non-empty names replace the stored ones and tags and attributes are
        merged in. Someone who opted out is refused with a SubscriberError.
        """
        row = ImportRow(0, email, first_name, last_name, tuple(tags), dict(attributes or {}))
        row = row.validated()
        with self._transaction():
            subscriber_id = self._upsert(row, db.now(), source)[1]
        subscriber = self.get_by_id(subscriber_id)
        assert subscriber is not None
        return subscriber

    def get(self, email: str) -> Subscriber | None:
        """The subscriber with this address (ignoring case), if any."""
        try:
            key = normalize_email(email)
        except SubscriberError:
            key = email.strip()
        row = self.conn.execute(f"{self._select} WHERE s.email = ?", (key,)).fetchone()
        return _subscriber(row) if row else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with this id, if any."""
        row = self.conn.execute(f"{self._select} WHERE s.id = ?", (subscriber_id,)).fetchone()
        return _subscriber(row) if row else None

    def get_by_public_id(self, public_id: str) -> Subscriber | None:
        """The subscriber a link names by their public id, if any."""
        row = self.conn.execute(f"{self._select} WHERE s.public_id = ?", (public_id,)).fetchone()
        return _subscriber(row) if row else None

    def erase(self, email: str, *, source: str = "cli", reason: str = "") -> Subscriber | None:
        """Erase the subscriber with this address: their fields, tags, history and deliveries.

        A keyed hash of the address stays on the suppression list, so no import or `add`
        brings them back (only a new double opt-in does), and the erasure is logged without
        the address. Returns what was erased, or None if the address is not on the list.
        """
        subscriber = self.get(email)
        if subscriber is None:
            return None
        with self._transaction():
            suppression.suppress(self.conn, subscriber.email, subscriber.status.value, reason)
            self.conn.execute(
                "INSERT INTO erasures (erased_at, status, source, reason) VALUES (?, ?, ?, ?)",
                (db.now(), subscriber.status.value, source, reason),
            )
            self.conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber.id,))
        return subscriber

    def person(self, email: str) -> dict[str, Any] | None:
        """Everything held about one person (for a data-access request), or None."""
        subscriber = self.get(email)
        if subscriber is None:
            return None
        deliveries = self.conn.execute(
            "SELECT issue, status, attempts, last_reply, message_id, updated_at"
            " FROM deliveries WHERE subscriber_id = ? ORDER BY updated_at, issue",
            (subscriber.id,),
        )
        return {
            **asdict(subscriber),
            "history": self.history(subscriber.id),
            "deliveries": [dict(row) for row in deliveries],
        }

    def tag(self, email: str, tags: Iterable[str]) -> Subscriber:
        """Add tags to the subscriber with this address; SubscriberError if unknown."""
        subscriber = self._known(email)
        with self._transaction():
            self._add_tags(subscriber.id, _clean_tags(tags))
        return self._known(email)

    def untag(self, email: str, tags: Iterable[str]) -> Subscriber:
        """Take tags off the subscriber with this address (ignoring case)."""
        subscriber = self._known(email)
        with self._transaction():
            self.conn.executemany(
                "DELETE FROM subscriber_tags WHERE subscriber_id = ? AND tag = ?",
                [(subscriber.id, tag) for tag in _clean_tags(tags)],
            )
        return self._known(email)

    def tag_counts(self) -> dict[str, dict[str, int]]:
        """Every tag with how many subscribers have it, per status."""
        counts: dict[str, dict[str, int]] = {}
        rows = self.conn.execute(
            "SELECT t.tag, s.status, count(*) FROM subscriber_tags t"
            " JOIN subscribers s ON s.id = t.subscriber_id GROUP BY t.tag, s.status"
            " ORDER BY lower(t.tag)"
        )
        for tag, status, count in rows:
            counts.setdefault(tag, {})[status] = count
        return counts

    def _known(self, email: str) -> Subscriber:
        subscriber = self.get(email)
        if subscriber is None:
            raise SubscriberError(
                Problem(f"{email} is not on the list; check the address", code="not-found")
            )
        return subscriber

    def set_status(
        self, subscriber_id: int, status: Status, reason: str = "", *, source: str,
        issue: str = "",
    ) -> Subscriber:  # fmt: skip
        """Change a subscriber's status and record the change (with the issue it came from,
        if any: an unsubscribe link, a bounce); nothing if it is unchanged."""
        status = Status(status)
        with self._transaction():
            row = self.conn.execute(
                "SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)
            ).fetchone()
            if row is None:
                raise SubscriberError(
                    Problem(f"no subscriber has id {subscriber_id}", code="not-found")
                )
            if row["status"] != status:
                self._record_status(subscriber_id, status, reason, source, db.now(), issue)
            if status == Status.ACTIVE:  # a confirmed sign-up is the one way back
                email = self.conn.execute(
                    "SELECT email FROM subscribers WHERE id = ?", (subscriber_id,)
                ).fetchone()[0]
                suppression.lift(self.conn, email)
        subscriber = self.get_by_id(subscriber_id)
        assert subscriber is not None
        return subscriber

    def unsubscribe(
        self, email: str, reason: str = "", *, source: str = "cli", issue: str = ""
    ) -> Subscriber:
        """Mark the subscriber with this address unsubscribed; SubscriberError if unknown."""
        subscriber = self.get(email)
        if subscriber is None:
            raise SubscriberError(
                Problem(f"{email} is not on the list; check the address", code="not-found")
            )
        return self.set_status(
            subscriber.id, Status.UNSUBSCRIBED, reason, source=source, issue=issue
        )

    def history(self, subscriber_id: int) -> list[dict[str, str]]:
        """The subscriber's status changes, oldest first: status, reason, source, changed_at."""
        rows = self.conn.execute(
            "SELECT status, reason, source, changed_at FROM status_changes"
            " WHERE subscriber_id = ? ORDER BY id",
            (subscriber_id,),
        )
        return [dict(row) for row in rows]

    def iter(
        self, status: Status | None = None, tag: str | None = None, batch_size: int = 1000
    ) -> Iterator[Subscriber]:
        """Every matching subscriber in id order, read `batch_size` rows at a time.

        Each batch is fetched whole (keyset pagination on id), so no statement stays open
        between batches and the caller may write to the database while iterating.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        conditions, params = _filters(status, tag)
        where = " AND ".join(["s.id > ?", *conditions])
        query = f"{self._select} WHERE {where} ORDER BY s.id LIMIT ?"
        last = 0
        while True:
            rows = self.conn.execute(query, (last, *params, batch_size)).fetchall()
            for row in rows:
                yield _subscriber(row)
            if len(rows) < batch_size:
                return
            last = rows[-1]["id"]

    def count(self, status: Status | None = None, tag: str | None = None) -> int:
        """How many subscribers match."""
        conditions, params = _filters(status, tag)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT count(*) FROM subscribers s{where}"
        return int(self.conn.execute(query, params).fetchone()[0])

    def count_by_domain(self, status: Status = Status.ACTIVE) -> dict[str, int]:
        """How many subscribers with `status` each address domain (lower-cased) has."""
        rows = self.conn.execute(
            f"SELECT {self.conn.dialect.email_domain} AS domain, count(*)"
            " FROM subscribers WHERE status = ? GROUP BY domain",
            (Status(status).value,),
        )
        return {domain: count for domain, count in rows}

    def import_rows(
        self, rows: Iterable[ImportRow], *, source: str = "import", dry_run: bool = False
    ) -> ImportReport:
        """Add or update every row in one transaction: all of them or, on an error, none.

        New addresses are added (active, or with the opted-out status the row gives, at the
        time and with the reason the source gave); active and pending ones are updated
        (non-empty names win, tags and attributes merged, an opted-out status applied). People
        who opted out are left alone: a row that would make them active is skipped with a
        problem. An address repeated in `rows` (ignoring case) is merged into the first and
        counted once. Invalid rows are skipped with a problem. `dry_run` does all of it and
        then rolls it back, so the report says what an import would do.
        """
        report = ImportReport(dry_run=dry_run)
        seen: set[int] = set()
        now = db.now()
        public_ids = _public_ids()
        with self._transaction(commit=not dry_run), self.conn.bulk():
            check = suppression.any_suppressed(self.conn)
            for row in rows:
                try:
                    row = row.validated()
                    outcome, subscriber_id, status = self._upsert(
                        row, now, source, check, next(public_ids)
                    )
                except _Refused as exc:
                    outcome, subscriber_id, status = "refused", exc.subscriber_id, exc.status
                    if subscriber_id not in seen:
                        report.problems.extend(replace(p, line=row.line) for p in exc.problems)
                except SubscriberError as exc:
                    report.skipped += 1
                    report.problems.extend(replace(p, line=row.line) for p in exc.problems)
                    continue
                if subscriber_id in seen:
                    continue
                seen.add(subscriber_id)
                report.statuses[str(status)] += 1  # a Status's value
                if outcome == "added":
                    report.imported += 1
                elif outcome == "updated":
                    report.updated += 1
                else:
                    report.skipped += 1
        return report

    def _upsert(
        self, row: ImportRow, now: str, source: str, check_suppressed: bool = True,
        public_id: str = "",
    ) -> tuple[str, int, Status]:  # fmt: skip
        """Apply one validated row: ('added' | 'updated' | 'kept', id, the status it ends
        with). Call in a transaction. `check_suppressed` False skips the suppression list
        (an import does when the list is empty). A person added gets `public_id` (a new
        random one if it is empty).

        Raises _Refused, having written nothing, for an opted-out person the row would make
        active again, and _Suppressed for an erased person it would add back.
        """
        changed_at = row.status_at or now
        # A sign-up on the web (pending until confirmed by email) is the one way back.
        if check_suppressed and source != "web":
            left = suppression.suppressed(self.conn, row.email)
            if left and not self._listed(row.email):
                raise _Suppressed(row.email, Status(left))
        added = self.conn.insert(
            "INSERT INTO subscribers (email, first_name, last_name, attributes, status,"
            " status_reason, status_changed_at, created_at, public_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
            (
                row.email,
                row.first_name,
                row.last_name,
                _row_attributes_json(row.attributes),
                row.status.value,
                row.status_reason,
                changed_at,
                now,
                public_id or secrets.token_hex(16),  # as the trigger would, without its UPDATE
            ),
        )
        if added is not None:
            subscriber_id = added
            self._history(subscriber_id, row.status, row.status_reason, source, changed_at)
            if row.tags:
                self._add_tags(subscriber_id, row.tags)
            return "added", subscriber_id, row.status
        old = self.conn.execute(
            "SELECT id, first_name, last_name, attributes, status, status_changed_at"
            " FROM subscribers WHERE email = ?",
            (row.email,),
        ).fetchone()
        subscriber_id = old["id"]
        if old["status"] in OPTED_OUT:
            if row.status in OPTED_OUT:
                return "kept", subscriber_id, Status(old["status"])
            raise _Refused(subscriber_id, row.email, old["status"], old["status_changed_at"])
        attributes = json.loads(old["attributes"])
        attributes.update({key: value for key, value in row.attributes.items() if value})
        self.conn.execute(
            "UPDATE subscribers SET first_name = ?, last_name = ?, attributes = ? WHERE id = ?",
            (
                row.first_name or old["first_name"],
                row.last_name or old["last_name"],
                _attributes_json(attributes),
                subscriber_id,
            ),
        )
        self._add_tags(subscriber_id, row.tags)
        if row.status in OPTED_OUT:
            self._record_status(subscriber_id, row.status, row.status_reason, source, changed_at)
            return "updated", subscriber_id, row.status
        return "updated", subscriber_id, Status(old["status"])

    def _listed(self, email: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM subscribers WHERE email = ?", (email,))
        return row.fetchone() is not None

    def _add_tags(self, subscriber_id: int, tags: Iterable[str]) -> None:
        self._tag_rows.extend([(subscriber_id, tag) for tag in tags])
        if len(self._tag_rows) >= WRITE_BATCH:
            self._write_queued()

    def _record_status(
        self, subscriber_id: int, status: Status, reason: str, source: str, now: str,
        issue: str = "",
    ) -> None:  # fmt: skip
        self.conn.execute(
            "UPDATE subscribers SET status = ?, status_reason = ?, status_changed_at = ?"
            " WHERE id = ?",
            (status.value, reason, now, subscriber_id),
        )
        self._history(subscriber_id, status, reason, source, now, issue)

    def _history(
        self, subscriber_id: int, status: Status, reason: str, source: str, now: str,
        issue: str = "",
    ) -> None:  # fmt: skip
        self._history_rows.append((subscriber_id, status.value, reason, source, now, issue))
        if len(self._history_rows) >= WRITE_BATCH:
            self._write_queued()
