"""The rate limits kept in the database (deliver/ratelimits.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from concurrently import at_once

from newsletter.deliver import db, postgres, ratelimits
from newsletter.deliver.ratelimits import Limit

KEY = b"k" * 32
THREE_A_MINUTE = Limit("ip", 3, 60.0)
Connect = Callable[[], db.Connection]


@pytest.fixture(params=["sqlite", "postgresql"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connect]:
    """Opens connections to one fresh database of either kind."""
    location: Path | str = tmp_path / "list.db"
    if request.param == "postgresql":
        location = request.getfixturevalue("postgres_url")
    try:
        yield lambda: db.connect(location, lock_wait=10)
    finally:
        postgres.close_pools()


@pytest.fixture
def conn(connect: Connect) -> Iterator[db.Connection]:
    with contextlib.closing(connect()) as connection:
        yield connection


def test_the_limit_holds_in_a_sliding_window(conn: db.Connection) -> None:
    def allow(at: float) -> bool:
        return ratelimits.allow(conn, KEY, THREE_A_MINUTE, "203.0.113.7", at)

    assert [allow(1000 + i) for i in range(4)] == [True, True, True, False]
    assert not allow(1059.5)  # the first event is still inside the window
    assert allow(1060.5)  # ... and now it is not: one more
    assert not allow(1060.9)
    assert allow(1200)  # everything has passed


def test_values_and_limits_are_counted_apart(conn: db.Connection) -> None:
    one = Limit("address", 1, 3600.0)
    assert ratelimits.allow(conn, KEY, one, "ada@example.org", 0)
    assert not ratelimits.allow(conn, KEY, one, "ada@example.org", 1)
    assert ratelimits.allow(conn, KEY, one, "bob@example.org", 2)
    assert ratelimits.allow(conn, KEY, Limit("ip", 1, 3600.0), "ada@example.org", 3)


def test_only_keyed_hashes_are_stored(conn: db.Connection) -> None:
    ratelimits.allow(conn, KEY, THREE_A_MINUTE, "ada@example.org", 1000)
    rows = [tuple(row) for row in conn.execute("SELECT hash, hits FROM rate_limits")]
    assert rows == [(ratelimits.key_hash(KEY, THREE_A_MINUTE, "ada@example.org"), "1000.000")]
    assert "ada" not in repr(rows)
    assert ratelimits.key_hash(b"o" * 32, THREE_A_MINUTE, "ada@example.org") != rows[0][0]


def test_rows_whose_window_has_passed_are_deleted(conn: db.Connection) -> None:
    for i in range(20):
        ratelimits.allow(conn, KEY, THREE_A_MINUTE, f"198.51.100.{i}", 1000)
    ratelimits.allow(conn, KEY, THREE_A_MINUTE, "198.51.100.1", 1059)
    ratelimits.allow(conn, KEY, THREE_A_MINUTE, "203.0.113.1", 1061)  # the others are stale
    left = conn.execute("SELECT count(*) FROM rate_limits").fetchone()[0]
    assert left == 2


def test_concurrent_checks_allow_exactly_the_limit(connect: Connect) -> None:
    """Eight connections race for one key: together they get `count` events, no more."""
    limit = Limit("ip", 5, 3600.0)
    answers: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        with contextlib.closing(connect()) as own:
            for _ in range(4):
                allowed = ratelimits.allow(own, KEY, limit, "192.0.2.1", 1000)
                with lock:
                    answers.append(allowed)

    assert at_once(worker, 8, timeout=30) == []
    assert len(answers) == 32 and answers.count(True) == 5


def test_a_failed_check_leaves_no_transaction_open(conn: db.Connection) -> None:
    conn.execute("DROP TABLE rate_limits")
    with pytest.raises(Exception, match="rate_limits"):
        ratelimits.allow(conn, KEY, THREE_A_MINUTE, "192.0.2.1", 1000)
    assert not conn.in_transaction
