"""The subscriber store and subscriber CSV files, on real SQLite databases and real files."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from concurrently import at_once

from newsletter.deliver import db, subscribers
from newsletter.deliver.csvfiles import open_subscriber_csv, write_subscriber_csv
from newsletter.deliver.subscribers import (
    ImportRow,
    Status,
    SubscriberStore,
    check_header_safe,
    normalize_email,
)
from newsletter.errors import Problem, SubscriberError

pytestmark = pytest.mark.usefixtures("each_database")


def read_subscriber_csv(path: Path) -> tuple[list[ImportRow], list[Problem], str]:
    """The file's rows read to the end, the problems found, the format."""
    problems: list[Problem] = []
    rows, kind = open_subscriber_csv(path, None, problems)
    return list(rows), problems, kind


INJECTION = "Eve\r\nBcc: x@evil.example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SubscriberStore]:
    with SubscriberStore.open(tmp_path / "newsletter.db") as opened:
        yield opened


def write_csv(tmp_path: Path, text: str, *, bom: bool = False, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def emails(store: SubscriberStore, **filters: object) -> list[str]:
    return [subscriber.email for subscriber in store.iter(**filters)]  # type: ignore[arg-type]


# --- database --------------------------------------------------------------------------------


def test_new_database_is_at_the_latest_schema_version(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path / "sub" / "newsletter.db") as store:
        assert db.schema_version(store.conn) == len(db.MIGRATIONS) >= 1


@pytest.mark.sqlite_only
def test_connections_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(db.MIGRATIONS[:-2], start=1):
        old.executescript(f"BEGIN;{script};PRAGMA user_version = {number};COMMIT;")
    old.close()
    assert at_once(lambda: db.connect(path).close(), 8) == []
    assert db.schema_version(db.connect(path)) == len(db.MIGRATIONS)


def opened_and_closed(path: Path) -> None:
    db.connect_sqlite(path, migrated=False).close()


@pytest.mark.sqlite_only
def test_connections_opening_a_rollback_journal_file_at_once_all_get_wal(tmp_path: Path) -> None:
    """Switching to WAL fails at once ("locked") for all but one of several connections that
    each hold a read lock; they wait and try again (seen about once in 25 rounds of 8)."""
    for round_ in range(40):
        path = tmp_path / f"{round_}.db"
        sqlite3.connect(path, isolation_level=None).execute("CREATE TABLE t (x)").connection.close()
        assert at_once(functools.partial(opened_and_closed, path), 8) == []
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


@pytest.mark.sqlite_only
def test_database_at_version_0_without_tables_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    with SubscriberStore.open(path) as store:
        assert db.schema_version(store.conn) == len(db.MIGRATIONS)
        tables = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master")}
        assert {"subscribers", "subscriber_tags", "status_changes", "deliveries"} <= tables
        assert store.add("ann@example.com").status is Status.ACTIVE


# --- checks ----------------------------------------------------------------------------------


def test_normalize_email_lowercases_the_domain_and_names_a_bad_value() -> None:
    assert normalize_email(" Ann@Example.COM ") == "Ann@example.com"
    with pytest.raises(SubscriberError, match="'bob@' is not a valid email address"):
        normalize_email("bob@")


@pytest.mark.parametrize("name", [INJECTION, "Eve\nBcc", "Eve\rX", "Eve\x00", "Eve\u2028X"])
def test_header_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(SubscriberError, match=r"first_name .* line break or control character"):
        check_header_safe(name, "first_name")


def test_add_refuses_header_injection_and_stores_nothing(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="last_name"):
        store.add("eve@example.com", "Eve", INJECTION)
    assert store.count() == 0


# --- add, get, remove, status ----------------------------------------------------------------


def test_add_then_get_ignoring_case(store: SubscriberStore) -> None:
    added = store.add("Ann@Example.com", " Ann ", "Lee", ["news", "VIP", "vip"], {"city": "Paris"})
    assert added.email == "Ann@example.com"
    assert (added.first_name, added.last_name, added.name) == ("Ann", "Lee", "Ann Lee")
    assert added.tags == ("news", "VIP")
    assert added.attributes == {"city": "Paris"}
    assert added.status is Status.ACTIVE
    assert added.created_at == added.status_changed_at
    assert store.get("ann@EXAMPLE.com") == added
    assert store.get_by_id(added.id) == added
    assert store.get("nobody@example.com") is None


def test_add_again_updates_and_merges(store: SubscriberStore) -> None:
    first = store.add("ann@example.com", "Ann", "Lee", ["news"], {"city": "Paris", "lang": "fr"})
    again = store.add("ANN@example.com", "Annie", "", ["vip"], {"city": "Lyon"})
    assert again.id == first.id
    assert (again.first_name, again.last_name) == ("Annie", "Lee")
    assert again.tags == ("news", "vip")
    assert again.attributes == {"city": "Lyon", "lang": "fr"}
    assert store.count() == 1


@pytest.mark.parametrize("status", [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED])
def test_add_does_not_revive_opted_out_people(store: SubscriberStore, status: Status) -> None:
    ann = store.add("ann@example.com", "Ann")
    store.set_status(ann.id, status, "test", source="test")
    with pytest.raises(SubscriberError, match=r"ann@example.com .* on \d{4}-\d\d-\d\d: not resub"):
        store.add("ann@example.com", "Annie")
    kept = store.get("ann@example.com")
    assert kept is not None
    assert (kept.status, kept.first_name) == (status, "Ann")


def test_status_changes_are_recorded_with_time_reason_and_source(store: SubscriberStore) -> None:
    ann = store.add("ann@example.com", source="signup")
    changed = store.set_status(ann.id, Status.BOUNCED, "550 no such user", source="smtp")
    assert (changed.status, changed.status_reason) == (Status.BOUNCED, "550 no such user")
    store.set_status(ann.id, Status.BOUNCED, "again", source="smtp")  # unchanged: not recorded
    store.unsubscribe("ANN@example.com", "asked by phone")
    history = store.history(ann.id)
    assert [(h["status"], h["reason"], h["source"]) for h in history] == [
        ("active", "", "signup"),
        ("bounced", "550 no such user", "smtp"),
        ("unsubscribed", "asked by phone", "cli"),
    ]
    assert all(h["changed_at"].startswith("20") and "T" in h["changed_at"] for h in history)
    final = store.get("ann@example.com")
    assert final is not None
    assert final.status_changed_at == history[-1]["changed_at"]


def test_unknown_subscriber_is_an_input_error(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match=r"nobody@example\.com is not on the list"):
        store.unsubscribe("nobody@example.com")
    with pytest.raises(SubscriberError, match="no subscriber has id 42"):
        store.set_status(42, Status.BOUNCED, source="smtp")
    assert SubscriberError.exit_code == 2


def test_remove_erases_the_person_and_their_records(store: SubscriberStore) -> None:
    ann = store.add("ann@example.com", tags=["news"])
    store.conn.execute(
        "INSERT INTO deliveries (issue, subscriber_id, updated_at) VALUES ('i1', ?, ?)",
        (ann.id, db.now()),
    )
    assert store.erase("ANN@example.com") is not None
    assert store.erase("ann@example.com") is None
    for table in ("subscribers", "subscriber_tags", "status_changes", "deliveries"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


# --- iteration and counting ------------------------------------------------------------------


@pytest.mark.sqlite_only  # counts statements with SQLite's trace callback
def test_iter_streams_in_id_order_in_batches(store: SubscriberStore) -> None:
    added = [store.add(f"p{n}@example.com").id for n in (5, 3, 9, 1, 0, 8, 2, 7, 4, 6)]
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    seen = [subscriber.id for subscriber in store.iter(batch_size=3)]
    store.conn.set_trace_callback(None)
    assert seen == sorted(added) == added
    pages = [s for s in statements if "LIMIT" in s]
    assert len(pages) == 4  # 3 + 3 + 3 + 1
    assert all(s.rstrip().endswith("LIMIT 3") for s in pages)


def test_iter_reads_a_batch_at_a_time(store: SubscriberStore) -> None:
    for n in range(10):
        store.add(f"p{n}@example.com")
    stream = store.iter(batch_size=3)
    assert next(stream).email == "p0@example.com"
    store.add("late@example.com")  # a write while iterating is allowed, and is seen later
    assert [s.email for s in stream][-1] == "late@example.com"


def test_filters_by_status_and_tag(store: SubscriberStore) -> None:
    store.add("a@example.com", tags=["news"])
    store.add("b@example.com", tags=["News", "vip"])
    c = store.add("c@example.com", tags=["vip"])
    store.add("d@example.com")
    store.unsubscribe("b@example.com")
    store.set_status(c.id, Status.BOUNCED, source="smtp")
    assert emails(store, tag="news") == ["a@example.com", "b@example.com"]
    assert emails(store, tag="vip", status=Status.BOUNCED) == ["c@example.com"]
    assert emails(store, status=Status.ACTIVE) == ["a@example.com", "d@example.com"]
    assert emails(store, tag="nobody") == []
    assert store.count() == 4
    assert store.count(status=Status.ACTIVE, tag="NEWS") == 1
    assert store.count(tag="vip") == 2


# --- import_rows -----------------------------------------------------------------------------


def test_import_rows_adds_updates_merges_duplicates_and_spares_opt_outs(
    store: SubscriberStore,
) -> None:
    store.add("old@example.com", "Old", tags=["news"], attributes={"city": "Rome"})
    store.add("gone@example.com")
    store.unsubscribe("gone@example.com")
    report = store.import_rows(
        [
            ImportRow(2, "new@example.com", "New", tags=("a",)),
            ImportRow(3, "OLD@example.com", "", "Timer", ("vip",), {"city": "", "lang": "it"}),
            ImportRow(4, "gone@example.com", "Back"),
            ImportRow(5, "not an address"),
            ImportRow(6, "NEW@example.com", "Newer", tags=("b",), attributes={"x": "1"}),
            ImportRow(7, "gone@example.com", "Again"),
        ],
        source="import:test",
    )
    assert (report.imported, report.updated, report.skipped) == (1, 1, 2)
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (4, "gone@example.com unsubscribed on " + store_date(store, "gone@example.com")),
        (5, "'not an address' is not a valid email address"),
    ]
    assert report.problems[0].message.endswith(": not resubscribed")
    new = store.get("new@example.com")
    assert new is not None
    assert (new.first_name, new.tags, new.attributes) == ("Newer", ("a", "b"), {"x": "1"})
    assert store.history(new.id) == [
        {"status": "active", "reason": "", "source": "import:test", "changed_at": new.created_at}
    ]
    old = store.get("old@example.com")
    assert old is not None
    assert (old.first_name, old.last_name, old.tags) == ("Old", "Timer", ("news", "vip"))
    assert old.attributes == {"city": "Rome", "lang": "it"}
    gone = store.get("gone@example.com")
    assert gone is not None
    assert (gone.status, gone.first_name) == (Status.UNSUBSCRIBED, "")


def store_date(store: SubscriberStore, email: str) -> str:
    subscriber = store.get(email)
    assert subscriber is not None
    return subscriber.status_changed_at[:10]


def test_import_rows_never_revives_bounced_people(store: SubscriberStore) -> None:
    bob = store.add("bob@example.com")
    store.set_status(bob.id, Status.BOUNCED, "550", source="smtp")
    report = store.import_rows([ImportRow(2, "bob@example.com")])
    assert (report.imported, report.updated, report.skipped) == (0, 0, 1)
    assert "bob@example.com bounced on" in report.problems[0].message
    assert store.count(status=Status.ACTIVE) == 0


def test_import_rows_applies_an_opted_out_status(store: SubscriberStore) -> None:
    store.add("ann@example.com")
    report = store.import_rows(
        [
            ImportRow(2, "ann@example.com", status=Status.UNSUBSCRIBED),
            ImportRow(3, "bob@example.com", status=Status.COMPLAINED),
        ]
    )
    assert (report.imported, report.updated, report.skipped, report.problems) == (1, 1, 0, [])
    assert store.count(status=Status.ACTIVE) == 0
    with pytest.raises(SubscriberError, match=r"bob@example\.com marked the newsletter as spam"):
        store.add("bob@example.com")


def test_import_rows_is_one_transaction(store: SubscriberStore) -> None:
    store.add("kept@example.com", "Kept")

    def rows() -> Iterator[ImportRow]:
        yield ImportRow(2, "a@example.com")
        yield ImportRow(3, "kept@example.com", "Changed")
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.import_rows(rows())
    assert emails(store) == ["kept@example.com"]
    kept = store.get("kept@example.com")
    assert kept is not None and kept.first_name == "Kept"
    assert not store.conn.in_transaction


def test_an_import_gives_each_person_a_distinct_random_public_id(store: SubscriberStore) -> None:
    count = 2 * subscribers.PUBLIC_ID_BLOCK + 3  # ids from three reads of the random source
    store.add("first@example.com")
    store.import_rows(ImportRow(i, f"p{i}@example.com") for i in range(count))
    ids = {subscriber.public_id for subscriber in store.iter()}
    assert len(ids) == count + 1
    assert all(re.fullmatch("[0-9a-f]{32}", public_id) for public_id in ids)


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"city": "Zürich"},
        {"b": 'say "hi"\\ now', "a": "tab\there\nand\x01", "A": "\u2028 😀 \ud800", "": ""},
    ],
)
def test_row_attributes_are_stored_as_the_json_encoder_writes_them(
    attributes: dict[str, str],
) -> None:
    expected = json.dumps(attributes, ensure_ascii=False, sort_keys=True)
    assert subscribers._row_attributes_json(attributes) == expected


def test_tags_are_stripped_and_deduplicated_ignoring_case(store: SubscriberStore) -> None:
    added = store.add("a@example.com", tags=[" News ", "", "vip", "NEWS", "  "])
    assert added.tags == ("News", "vip")


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["ok", "a,b"], "tag 'a,b' contains ',' or '|'"),
        (["ok", " a|b "], "tag 'a|b' contains ',' or '|'"),
        (["ok", "x\ny"], "tag 'x\\ny' contains a line break"),
        (["a,b", "x\u2028y"], "tag 'a,b' contains"),  # the first bad tag is named
        (["x\ty", "a|b"], "tag 'x\\ty' contains a line break"),
    ],
)
def test_a_bad_tag_is_refused_by_name(
    store: SubscriberStore, tags: list[str], message: str
) -> None:
    with pytest.raises(SubscriberError, match=re.escape(message)):
        store.add("a@example.com", tags=tags)
    assert store.count() == 0


# --- CSV files -------------------------------------------------------------------------------


def test_read_csv_with_bom_semicolons_mixed_case_headers_and_extra_columns(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path,
        " EMAIL ;First Name;last_name;Tags;Company\n"
        "ann@example.com;Ann;Lee;news|vip, events;ACME\n"
        "\n"
        "bob@example.com;Bob;;;\n",
        bom=True,
    )
    rows, problems, _ = read_subscriber_csv(path)
    assert problems == []
    assert rows == [
        ImportRow(
            2, "ann@example.com", "Ann", "Lee", ("news", "vip", "events"), {"company": "ACME"}
        ),
        ImportRow(4, "bob@example.com", "Bob", "", (), {"company": ""}),
    ]


def test_bad_rows_are_located_and_skipped(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "email,first_name\n"
        "ann@example.com,Ann\n"
        "not-an-address,Bob\n"
        '"eve@example.com","Eve\r\nBcc: x@evil.example"\n'
        "carl@example.com,Carl,extra\n"
        ",Nobody\n"
        "dan@example.com,Dan\n",
    )
    rows, problems, _ = read_subscriber_csv(path)
    assert [row.email for row in rows] == ["ann@example.com", "dan@example.com"]
    assert [row.line for row in rows] == [2, 8]
    assert [(p.path, p.line) for p in problems] == [(path, 3), (path, 4), (path, 6), (path, 7)]
    assert "'not-an-address' is not a valid email address" in problems[0].message
    assert "line break or control character" in problems[1].message
    assert problems[2].message == "has 3 fields but the header has 2"
    assert problems[3].message == "the email cell is empty"
    assert str(problems[2]) == f"{path}:6: has 3 fields but the header has 2"


def test_csv_without_email_column_names_the_columns_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "mail;name\nann@example.com;Ann\n")
    with pytest.raises(SubscriberError) as caught:
        read_subscriber_csv(path)
    assert (
        str(caught.value) == f"{path}:1: has no email column; the columns found are: 'mail', 'name'"
    )


def test_csv_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,first_name\nzoe@example.com,Zoé\n".encode("latin-1"))
    with pytest.raises(SubscriberError, match=r"latin1.csv:2: is not UTF-8 text"):
        read_subscriber_csv(path)


def test_missing_or_empty_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="cannot read it"):
        read_subscriber_csv(tmp_path / "missing.csv")
    with pytest.raises(SubscriberError, match="is empty"):
        read_subscriber_csv(write_csv(tmp_path, "\n\n"))


def test_import_from_csv_merges_duplicates_in_the_file(
    tmp_path: Path, store: SubscriberStore
) -> None:
    path = write_csv(
        tmp_path,
        "email,first_name,last_name,tags\n"
        "ann@example.com,Ann,,news\n"
        "ANN@example.com,,Lee,vip\n"
        "bob@example.com,Bob,,\n",
    )
    rows, problems, _ = read_subscriber_csv(path)
    report = store.import_rows(rows)
    assert (report.imported, report.updated, report.skipped, problems) == (2, 0, 0, [])
    ann = store.get("ann@example.com")
    assert ann is not None
    assert (ann.first_name, ann.last_name, ann.tags) == ("Ann", "Lee", ("news", "vip"))
    report = store.import_rows(rows)
    assert (report.imported, report.updated, report.skipped) == (0, 2, 0)


def test_export_round_trips_through_import(tmp_path: Path, store: SubscriberStore) -> None:
    store.add("ann@example.com", "Ann", 'Lee, "Jr"', ["news", "vip"], {"city": "Zürich"})
    store.add("bob@example.com", tags=["news"])
    store.add("eve@example.com", "Eve")
    store.unsubscribe("eve@example.com", "moved away")
    out = io.StringIO()
    assert write_subscriber_csv(store.iter(), out) == 3
    assert out.getvalue().splitlines()[0] == (
        "email,first_name,last_name,tags,status,status_changed_at,attributes"
    )
    path = write_csv(tmp_path, out.getvalue(), name="export.csv")
    rows, problems, _ = read_subscriber_csv(path)
    assert problems == []
    with SubscriberStore.open(tmp_path / "copy.db") as copy:
        report = copy.import_rows(rows)
        assert (report.imported, report.updated, report.skipped) == (3, 0, 0)
        fields = ("email", "first_name", "last_name", "tags", "attributes", "status")

        def view(s: SubscriberStore) -> list[tuple[object, ...]]:
            return [tuple(getattr(sub, name) for name in fields) for sub in s.iter()]

        assert view(copy) == view(store)
        assert copy.count(status=Status.ACTIVE) == 2


def test_exported_formula_cells_are_neutralised_and_read_back(
    tmp_path: Path, store: SubscriberStore
) -> None:
    # what anyone can type into the public sign-up form comes back in an export
    store.add("-x@example.com", '=HYPERLINK("http://evil.example","Click")', "+1 Lee", ["@vip"])
    store.add("ann@example.com", "'=already quoted", "-")
    out = io.StringIO()
    write_subscriber_csv(store.iter(), out)
    cells = [cell for row in csv.reader(io.StringIO(out.getvalue())) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK("http://evil.example","Click")' in cells
    assert "''=already quoted" in cells
    rows, problems, _ = read_subscriber_csv(write_csv(tmp_path, out.getvalue(), name="x.csv"))
    assert problems == []
    assert [(r.email, r.first_name, r.last_name, r.tags) for r in rows] == [
        ("-x@example.com", '=HYPERLINK("http://evil.example","Click")', "+1 Lee", ("@vip",)),
        ("ann@example.com", "'=already quoted", "-", ()),
    ]
