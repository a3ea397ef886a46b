"""A send on PostgreSQL whose database connections are cut mid-send: one line, then a rerun
delivers every remaining reader exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from smtp_sink import Sink, running_sink
from test_crash_safety import start_send, wait_until
from test_send_faults import single_error_line

from newsletter.deliver import db, postgres
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import ImportRow, SubscriberStore

pytestmark = pytest.mark.slow


def _cut_every_connection(dsn: str) -> int:
    """Terminate the server sessions of every newsletter process (the server stays up)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'newsletter' AND pid != pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_connections_cut_mid_send_stop_it_in_one_line_and_a_rerun_completes(
    example: Path,
    project: Path,
    smtp_project: Callable[..., Path],
    postgres_url: str,
    postgres_dsn: str,
) -> None:
    config = project / "newsletter.toml"
    config.write_text(f'database = "{postgres_url}"\n' + config.read_text())
    emails = [f"p{i}@example.com" for i in range(300)]
    with SubscriberStore.open(postgres_url) as store:
        store.import_rows(ImportRow(i + 2, e, "", "", (), {}) for i, e in enumerate(emails))
    postgres.close_pools()
    sink = Sink(stall=lambda connection: 0.01)
    with running_sink(sink) as port:
        smtp_project(port, connections=2)
        process = start_send(project, example)
        wait_until(lambda: sink.count >= 40, process, 60)
        assert _cut_every_connection(postgres_dsn) >= 1
        _, err = process.communicate(timeout=60)
        assert process.returncode == 1, err
        single_error_line(err, "the database failed")
        assert "Traceback" not in err and postgres_url.split("@")[0] not in err.split("Error:")[0]
        assert sink.count < 300
        rerun = start_send(project, example)
        _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    received = sink.per_recipient()
    assert max(received.values()) == 1, "a reader got two copies"
    ledger = Ledger(db.connect(postgres_url), example.name)
    try:
        uncertain = {row["email"] for row in ledger.problems() if row["status"] == "sending"}
        assert set(emails) - set(received) <= uncertain
        assert len(uncertain) <= 2  # at most the copies in flight when the connections went
        assert ledger.counts()["queued"] == 0
    finally:
        postgres.close_pools()
