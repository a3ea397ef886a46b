"""The PostgreSQL fixtures: a throwaway cluster run as an unprivileged user, one empty database
per test, password logins only, and a skip with the reason where PostgreSQL is missing."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import postgres_server
import psycopg
import pytest
from postgres_server import PASSWORD_ENV, Cluster, Database, PostgresUnavailable

#: The databases the parametrised test below was given, one per run.
SEEN: set[str] = set()


def test_a_fresh_database_takes_a_table(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE readers (id bigserial PRIMARY KEY, email text NOT NULL)")
        conn.execute("INSERT INTO readers (email) VALUES (%s), (%s)", ("a@example.org", "b@x.org"))
        rows = conn.execute("SELECT email FROM readers ORDER BY id").fetchall()
    assert rows == [("a@example.org",), ("b@x.org",)]


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_empty_database(postgres_database: Database, run: int) -> None:
    assert postgres_database.name not in SEEN
    SEEN.add(postgres_database.name)
    with psycopg.connect(postgres_database.dsn) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
        conn.execute("CREATE TABLE left_behind (run int)")  # would break the other run if shared


def test_the_url_carries_no_password_and_the_environment_does(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    assert (parts.scheme, parts.hostname, parts.password) == ("postgresql", "127.0.0.1", None)
    password = os.environ[PASSWORD_ENV]
    with psycopg.connect(postgres_url, password=password, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (parts.username,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_url, password="wrong", connect_timeout=10)


def test_the_server_does_not_run_as_root(postgres_cluster: Cluster) -> None:
    status = Path(f"/proc/{postgres_cluster.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids
    if os.geteuid() != 0:
        assert uids[0] == str(os.geteuid())


def test_the_role_may_create_the_citext_extension(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert superuser.fetchone() == (False,)
        conn.execute("CREATE EXTENSION citext")
        same = conn.execute("SELECT 'Reader@Example.org'::citext = 'reader@example.org'")
        assert same.fetchone() == (True,)
        conn.execute("CREATE TABLE emails (email citext UNIQUE)")
        conn.execute("INSERT INTO emails VALUES ('Reader@Example.org')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO emails VALUES ('reader@example.org')")


def test_without_postgresql_the_reason_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres_server, "DEBIAN_ROOT", tmp_path)
    with pytest.raises(PostgresUnavailable, match=r"postgresql package; `make test` installs"):
        Cluster().start()
