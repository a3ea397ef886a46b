"""PostgreSQL and SQLite hold the same schema, and the server database behaves as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from concurrently import at_once
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver import db, postgres
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.errors import DatabaseError


def _sqlite_columns(path: Path) -> dict[str, set[str]]:
    conn = db.connect(path)
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


def _postgres_columns(dsn: str) -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    with psycopg.connect(dsn) as conn:
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name != 'newsletter_schema'"
        ):
            columns.setdefault(table, set()).add(column)
    return columns


def test_both_databases_have_the_same_tables_columns_and_version(
    tmp_path: Path, postgres_url: str, postgres_dsn: str
) -> None:
    conn = db.connect(postgres_url)
    assert db.schema_version(conn) == db.latest_version(conn) == len(db.MIGRATIONS)
    assert len(postgres.MIGRATIONS) == len(db.MIGRATIONS)
    conn.close()
    assert _postgres_columns(postgres_dsn) == _sqlite_columns(tmp_path / "newsletter.db")
    postgres.close_pools()


def test_addresses_and_tags_ignore_case_and_public_ids_are_random(postgres_url: str) -> None:
    with SubscriberStore.open(postgres_url) as store:
        ann = store.add("Ann@Example.org", tags=["Science"])
        bob = store.add("bob@example.org")
        assert store.get("ann@EXAMPLE.org") == ann
        assert [s.email for s in store.iter(tag="science")] == [ann.email]
        assert len({ann.public_id, bob.public_id}) == 2 and len(ann.public_id) == 32
    postgres.close_pools()


def test_processes_starting_at_once_migrate_once(postgres_url: str, postgres_dsn: str) -> None:
    assert at_once(lambda: db.connect(postgres_url).close(), 6) == []
    with psycopg.connect(postgres_dsn) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM newsletter_schema")]
    assert sorted(versions) == list(range(1, len(db.MIGRATIONS) + 1))
    postgres.close_pools()


def test_a_wrong_password_is_one_line_naming_the_variable(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(postgres.PASSWORD_VARIABLE, "not-the-password")
    try:
        with pytest.raises(DatabaseError, match=postgres.PASSWORD_VARIABLE) as raised:
            db.connect(postgres_url)
        assert "not-the-password" not in str(raised.value)
    finally:
        postgres.close_pools()


def test_the_password_may_come_from_a_file(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    secret = tmp_path / "db-password"
    secret.write_text(os.environ[postgres.PASSWORD_VARIABLE] + "\n")
    monkeypatch.delenv(postgres.PASSWORD_VARIABLE)
    monkeypatch.setenv(postgres.PASSWORD_FILE_VARIABLE, str(secret))
    try:
        db.connect(postgres_url).close()
    finally:
        postgres.close_pools()


def test_a_url_with_a_password_is_refused_in_the_config(project: Path, runner: CliRunner) -> None:
    config = project / "newsletter.toml"
    config.write_text(
        'database = "postgresql://news:hunter2@127.0.0.1/news"\n' + config.read_text()
    )
    result = runner.invoke(app, ["subscribers", "list"])
    assert result.exit_code == 2
    assert "NEWSLETTER_DATABASE_PASSWORD" in result.output
    assert "hunter2" not in result.output


def test_placeholders_and_percent_signs_translate() -> None:
    assert postgres.translate("SELECT '?', ? FROM t WHERE a LIKE 'x%' AND b = ?") == (
        "SELECT '?', %s FROM t WHERE a LIKE 'x%%' AND b = %s"
    )


def test_a_database_from_a_newer_newsletter_is_refused_on_both(
    tmp_path: Path, postgres_url: str, postgres_dsn: str
) -> None:
    sqlite = tmp_path / "newsletter.db"
    db.connect(sqlite).execute(f"PRAGMA user_version = {len(db.MIGRATIONS) + 1}")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE newsletter_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO newsletter_schema VALUES (%s)", [len(db.MIGRATIONS) + 1])
    try:
        for location in (sqlite, postgres_url):
            with pytest.raises(DatabaseError, match="newer than this newsletter knows"):
                db.connect(location)
    finally:
        postgres.close_pools()


def test_a_database_url_of_another_kind_is_refused(project: Path, runner: CliRunner) -> None:
    config = project / "newsletter.toml"
    config.write_text('database = "mysql://news@db.example.org/news"\n' + config.read_text())
    result = runner.invoke(app, ["subscribers", "list"])
    assert result.exit_code == 2
    assert "unknown kind of database 'mysql'" in result.output
    assert not list(project.glob("mysql*"))


def test_relaxed_commits_are_only_those_inside(postgres_url: str) -> None:
    conn = db.connect(postgres_url)
    try:
        server = conn.execute("SHOW synchronous_commit").fetchone()[0]
        with conn.relaxed():
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server
    finally:
        conn.close()
        postgres.close_pools()


def test_a_run_of_relaxed_writes_changes_the_session_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three relaxed writes cost one SET, not a SET and a RESET each; a statement outside, a
    transaction begun inside and ended outside, and the next user of the pooled connection
    all get the server's durability."""
    conn = db.connect(postgres_url)
    sent: list[str] = []
    live = conn._live  # type: ignore[attr-defined]
    execute = live.execute

    def counting(query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query if isinstance(query, str) else bytes(query).decode()))
        return execute(query, *args, **kwargs)

    monkeypatch.setattr(live, "execute", counting)

    def setting() -> str:
        return str(conn.execute("SHOW synchronous_commit").fetchone()[0])

    try:
        server = setting()
        conn.execute("CREATE TABLE t (x INTEGER)")
        sent.clear()
        for value in range(3):
            with conn.relaxed():
                conn.execute("INSERT INTO t VALUES (?)", [value])
        assert [q for q in sent if q.startswith("SET")] == ["SET synchronous_commit = off"]
        assert len(sent) == 4
        assert setting() == server
        with conn.relaxed():
            conn.begin()
            conn.execute("INSERT INTO t VALUES (3)")
            assert setting() == "off"
        assert setting() == server  # the commit outside relaxed() is durable (SET LOCAL)
        conn.execute("COMMIT")
        assert setting() == server
        with conn.relaxed():
            assert setting() == "off"
    finally:
        conn.close()
    again = db.connect(postgres_url)  # the pool's one connection, given back reset
    try:
        assert again._live is live  # type: ignore[attr-defined]
        assert str(again.execute("SHOW synchronous_commit").fetchone()[0]) == server
    finally:
        again.close()
        postgres.close_pools()


def test_without_psycopg_the_error_names_the_extra(
    project: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import newsletter.deliver

    for name in ("newsletter.deliver.postgres", "newsletter.deliver.dbcopy"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        monkeypatch.delattr(newsletter.deliver, name.rpartition(".")[2], raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(DatabaseError, match=r"pip install 'newsletter\[postgres\]'"):
        db.connect("postgresql://news@127.0.0.1/news")
    result = runner.invoke(app, ["db", "copy", "--to", "postgresql://news@127.0.0.1/news"])
    assert result.exit_code == 1 and "pip install 'newsletter[postgres]'" in result.output
    assert "Traceback" not in result.output


def test_a_pool_with_every_connection_busy_says_so_in_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "POOL_SIZE", 2)
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 0.5)
    held = [db.connect(postgres_url), db.connect(postgres_url)]
    try:
        with pytest.raises(DatabaseError, match="all 2 of this process's connections are busy"):
            db.connect(postgres_url)
        held.pop().close()
        db.connect(postgres_url).close()  # one given back serves the next
    finally:
        for conn in held:
            conn.close()
        postgres.close_pools()
