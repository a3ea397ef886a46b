"""`newsletter db status|migrate|copy` on real SQLite files and a throwaway PostgreSQL cluster:
status never migrates, migrate says from which version to which, and a copy moves every table
(ids, tags, history, raw bytes, the suppression key) into PostgreSQL, where the project's own
code reads it and new rows get fresh ids; a target with data, a URL with a password and an old
source are refused; a copy that fails leaves the target empty."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.deliver import db, postgres, suppression
from newsletter.deliver.dbcopy import dependency_order
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.schedule import ScheduleStore
from newsletter.deliver.subscribers import Status, SubscriberStore

RAW = b"From: mailer-daemon@example.net\r\n\r\n\x00\xff\\x binary \xc3\x28 tail"
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _closed_pools() -> Iterator[None]:
    yield
    postgres.close_pools()


def run(runner: CliRunner, *args: str, code: int = 0) -> Result:
    result = runner.invoke(app, ["db", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def old_database(path: Path, version: int) -> None:
    """An SQLite database left at schema version `version`."""
    conn = sqlite3.connect(path)
    for script in db.MIGRATIONS[:version]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def user_version(path: Path) -> int:
    return int(sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0])


def populate(path: Path) -> dict[str, Any]:
    """A database with a row in every table, written through the project's own code where it
    has a writer; what the checks after the copy need."""
    with SubscriberStore.open(path) as store:
        ann = store.add("ann@example.com", "Ann", "Lee", ["news", "vip"], {"plan": "pro"})
        bob = store.add("bob@example.org", "Bob", tags=["news"])
        store.unsubscribe("bob@example.org", "too many emails", source="link", issue="first")
        store.add("carl@example.net", "Carl")
        store.erase("carl@example.net", reason="asked by mail")
        dana = store.add("dana@example.com", "Dana", source="web")
        store.set_status(dana.id, Status.PENDING, "signed up", source="web")
        conn = store.conn
        Ledger(conn, "first").enqueue()
        conn.execute("UPDATE deliveries SET status = 'sent', attempts = 1, lease_until = 1.5")
        conn.execute(
            "INSERT INTO clicks (issue, url, clicked_at, human, reason) VALUES (?, ?, ?, ?, ?)",
            ("first", "https://news.example.org/a", db.now(), 1, ""),
        )
        conn.execute("INSERT INTO opens (issue, opened_at) VALUES ('first', ?)", (db.now(),))
        conn.execute(
            "INSERT INTO inbound_events (received_at, source, kind, subscriber_id, action, "
            "decision, raw) VALUES (?, 'imap', 'bounce', ?, 'bounced', '{}', ?)",
            (db.now(), ann.id, RAW),
        )
        conn.execute(
            "INSERT INTO preference_changes (subscriber_id, what, value, source, changed_at) "
            "VALUES (?, 'topic', 'science', 'web', ?)",
            (ann.id, db.now()),
        )
        conn.execute("INSERT INTO settings (name, value) VALUES ('signing_key', 'abc123')")
        conn.execute(
            "INSERT INTO send_overrides (issue, errors, created_at) VALUES ('first', '[]', ?)",
            (db.now(),),
        )
        conn.execute(
            "INSERT INTO sends (issue, transport, started_at, updated_at) "
            "VALUES ('first', 'outbox', ?, ?)",
            (db.now(), db.now()),
        )
    schedules = ScheduleStore(db.connect(path))
    scheduled = schedules.add(
        "second", "issues/second", NOW + dt.timedelta(days=1), "Europe/Paris", NOW, tag="news"
    )
    schedules.conn.close()
    return {"ann": ann.id, "bob": bob.id, "dana": dana.id, "schedule": scheduled.id}


def contents(conn: db.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, as plain tuples."""
    if conn.dialect.name == "sqlite":
        listing = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        listing = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    found = {}
    for (table,) in conn.execute(listing):
        if table == "newsletter_schema" or table.startswith("sqlite_"):
            continue
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
        found[table] = sorted((tuple(row) for row in rows), key=repr)
    return found


# --- status and migrate ------------------------------------------------------------------------


def test_status_of_an_old_sqlite_database_does_not_migrate_it(
    runner: CliRunner, project: Path
) -> None:
    old_database(project / "newsletter.db", 3)
    report = json.loads(run(runner, "status", "--json").stdout)
    latest = len(db.MIGRATIONS)
    assert report["database"] == str(project / "newsletter.db")
    assert (report["kind"], report["version"], report["latest"]) == ("sqlite", 3, latest)
    assert (report["pending"], report["newer"]) == (latest - 3, False)
    assert report["rows"]["subscribers"] == 0
    assert "schedules" not in report["rows"]
    assert user_version(project / "newsletter.db") == 3
    text = run(runner, "status").stdout
    assert f"Schema version 3 of {latest}: {latest - 3} migration(s) pending" in text
    assert "newsletter db migrate" in text


def test_migrate_then_status_on_sqlite(runner: CliRunner, project: Path) -> None:
    old_database(project / "newsletter.db", 2)
    latest = len(db.MIGRATIONS)
    assert json.loads(run(runner, "migrate", "--json").stdout) == {
        "database": str(project / "newsletter.db"), "from": 2, "to": latest
    }  # fmt: skip
    assert "already" in run(runner, "migrate").stdout
    with SubscriberStore.open(project / "newsletter.db") as store:
        store.add("ann@example.com")
    text = run(runner, "status").stdout
    assert "the latest this newsletter knows: up to date" in text
    assert "subscribers" in text
    assert json.loads(run(runner, "status", "--json").stdout)["rows"]["subscribers"] == 1


def test_status_of_a_database_not_created_yet(runner: CliRunner, project: Path) -> None:
    report = json.loads(run(runner, "status", "--json").stdout)
    assert (report["exists"], report["version"], report["rows"]) == (False, 0, {})
    assert not (project / "newsletter.db").exists()


def test_status_and_migrate_on_postgresql(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    config = project / "newsletter.toml"
    config.write_text(f'database = "{postgres_url}"\n' + config.read_text())
    latest = len(postgres.MIGRATIONS)
    before = json.loads(run(runner, "status", "--json").stdout)
    assert (before["kind"], before["version"], before["pending"]) == ("postgresql", 0, latest)
    assert before["database"] == postgres_url
    assert before["rows"] == {}  # looking created no table of the schema
    assert "Migrated" in run(runner, "migrate").stdout
    after = json.loads(run(runner, "status", "--json").stdout)
    assert (after["version"], after["pending"]) == (latest, 0)
    assert after["rows"]["subscribers"] == 0 and after["rows"]["suppression_meta"] == 1
    moved = json.loads(run(runner, "migrate", "--json", "--database", postgres_url).stdout)
    assert (moved["from"], moved["to"]) == (latest, latest)


def test_a_database_url_with_a_password_is_refused(runner: CliRunner, project: Path) -> None:
    url = "postgresql://news:s3cret@127.0.0.1/news"
    for args in (["status", "--database", url], ["copy", "--to", url]):
        result = run(runner, *args, code=2)
        assert "holds a password" in result.stderr
        assert "NEWSLETTER_DATABASE_PASSWORD" in result.stderr
        assert "s3cret" not in result.stdout + result.stderr


def test_copy_needs_a_postgresql_url_and_an_existing_source(
    runner: CliRunner, project: Path
) -> None:
    assert "postgresql://USER@HOST/NAME" in run(runner, "copy", "--to", "x.db", code=2).stderr
    result = run(runner, "copy", "--to", "postgresql://u@127.0.0.1/n", code=2)
    assert "no such database file" in result.stderr
    (project / "notes.txt").write_text("not a database at all, just text\n")
    result = run(runner, "copy", "--from", "notes.txt", "--to", "postgresql://u@h/n", code=2)
    assert "not an SQLite database" in result.stderr


# --- copy --------------------------------------------------------------------------------------


def test_copy_moves_every_table_and_new_rows_get_fresh_ids(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    source = project / "newsletter.db"
    made = populate(source)
    result = run(runner, "copy", "--to", postgres_url, "--json")
    report = json.loads(result.stdout)
    assert (report["source"], report["target"]) == (str(source), postgres_url)
    assert report["version"] == len(db.MIGRATIONS)
    order = list(report["rows"])
    assert order.index("subscribers") < order.index("subscriber_tags")
    assert order.index("subscribers") < order.index("inbound_events")
    assert report["rows"]["subscribers"] == 3 and report["rows"]["subscriber_tags"] == 3

    sqlite_conn = db.connect(source)
    pg_conn = db.connect(postgres_url)
    assert contents(pg_conn) == contents(sqlite_conn)
    assert set(report["rows"]) == set(contents(sqlite_conn))
    raw = pg_conn.execute("SELECT raw FROM inbound_events").fetchone()[0]
    assert bytes(raw) == RAW
    # the suppression key came along: the erased address is still kept out
    assert suppression.suppressed(pg_conn, "carl@example.net") == "active"
    pg_conn.close()
    sqlite_conn.close()

    with SubscriberStore.open(postgres_url) as store:
        ann = store.get("ANN@example.com")
        assert ann is not None and ann.id == made["ann"]
        assert (ann.tags, ann.attributes, ann.first_name) == (
            ("news", "vip"),
            {"plan": "pro"},
            "Ann",
        )
        bob = store.get_by_id(made["bob"])
        assert bob is not None and bob.status is Status.UNSUBSCRIBED
        assert [h["status"] for h in store.history(made["bob"])] == ["active", "unsubscribed"]
        newcomer = store.add("erin@example.com", "Erin")
        assert newcomer.id == made["dana"] + 1  # the sequence went past the copied ids
        assert (store.count(), store.count(Status.ACTIVE)) == (4, 2)
    schedules = ScheduleStore(db.connect(postgres_url))
    assert schedules.listing()[0].id == made["schedule"]
    later = schedules.add("third", "issues/third", NOW + dt.timedelta(days=2), "UTC", NOW)
    assert later.id == made["schedule"] + 1
    schedules.conn.close()

    status = json.loads(run(runner, "status", "--json", "--database", postgres_url).stdout)
    assert status["pending"] == 0 and status["rows"]["subscribers"] == 4

    text = run(runner, "copy", "--to", postgres_url, code=2).stderr
    assert "already holds data" in text and "subscribers" in text


def test_copy_prints_the_counts_per_table(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    populate(project / "newsletter.db")
    text = run(runner, "copy", "--to", postgres_url).stdout
    assert "inbound_events" in text and "subscriber_tags" in text
    assert "the counts match" in text
    assert f'set database = "{postgres_url}"' in text


def test_copy_from_a_named_file_into_a_migrated_empty_database(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    elsewhere = project / "old" / "list.db"
    elsewhere.parent.mkdir()
    populate(elsewhere)
    run(runner, "migrate", "--database", postgres_url)  # holds only the migrations' own rows
    report = json.loads(
        run(runner, "copy", "--from", str(elsewhere), "--to", postgres_url, "--json").stdout
    )
    assert report["rows"]["suppression_meta"] == 1
    conn = db.connect(postgres_url)
    key = conn.execute("SELECT value FROM suppression_meta").fetchone()[0]
    conn.close()
    original = sqlite3.connect(elsewhere).execute("SELECT value FROM suppression_meta")
    assert original.fetchone() == (key,)


def test_copy_refuses_a_source_at_an_older_schema(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    old_database(project / "newsletter.db", 4)
    result = run(runner, "copy", "--to", postgres_url, code=2)
    assert "schema version 4" in result.stderr
    assert "newsletter db migrate --database" in result.stderr
    assert user_version(project / "newsletter.db") == 4
    status = json.loads(run(runner, "status", "--json", "--database", postgres_url).stdout)
    assert status["version"] == 0  # the target was not touched either


def test_a_copy_that_fails_leaves_the_target_empty(
    runner: CliRunner, project: Path, postgres_url: str
) -> None:
    made = populate(project / "newsletter.db")
    conn = sqlite3.connect(project / "newsletter.db")
    conn.execute(  # PostgreSQL's text holds no NUL character: this row fails the copy
        "INSERT INTO status_changes (subscriber_id, status, reason, source, changed_at) "
        "VALUES (?, 'active', ?, 'cli', '2026-01-01')",
        (made["ann"], "bad\x00reason"),
    )
    conn.commit()
    conn.close()
    result = run(runner, "copy", "--to", postgres_url, "--json", code=1)
    assert json.loads(result.stdout)["error"]["code"] == "database-failed"
    assert "was undone" in result.stderr
    status = json.loads(run(runner, "status", "--json", "--database", postgres_url).stdout)
    assert status["version"] == len(postgres.MIGRATIONS)
    assert sum(status["rows"].values()) == status["rows"]["suppression_meta"] == 1


def test_tables_come_after_the_tables_they_reference(tmp_path: Path) -> None:
    conn = db.connect_sqlite(tmp_path / "x.db")
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    order = dependency_order(conn, names)
    conn.close()
    assert sorted(order) == sorted(names)
    for child in ("subscriber_tags", "status_changes", "deliveries", "inbound_events",
                  "preference_changes"):  # fmt: skip
        assert order.index("subscribers") < order.index(child)


def test_copy_streams_a_large_table_in_batches(
    project: Path, postgres_dsn: str, postgres_url: str
) -> None:
    from newsletter.deliver.dbcopy import BATCH, copy_database

    source = project / "newsletter.db"
    conn = db.connect_sqlite(source)
    rows = 3 * BATCH + 7
    conn.executemany(
        "INSERT INTO opens (issue, opened_at) VALUES (?, ?)",
        ((f"issue-{n % 5}", db.now()) for n in range(rows)),
    )
    conn.close()
    seen: list[tuple[str, int, int]] = []
    report = copy_database(source, postgres_url, lambda *step: seen.append(step))
    assert report.rows["opens"] == rows
    steps = [done for table, done, total in seen if table == "opens"]
    assert steps == [0, BATCH, 2 * BATCH, 3 * BATCH, rows]
    with psycopg.connect(postgres_dsn) as direct:
        assert direct.execute("SELECT count(*) FROM opens").fetchone() == (rows,)
