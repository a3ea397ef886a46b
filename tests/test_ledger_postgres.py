"""The ledger's claims on PostgreSQL: locked rows are skipped, not waited for; a sender that
stops renewing loses its claims when the lease runs out; a row past the commit point stays
uncertain and is never claimed again."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from newsletter.deliver import postgres
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import ClaimLost, Ledger
from newsletter.deliver.subscribers import ImportRow, SubscriberStore

ISSUE = "2026-01-one"


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database with ten active subscribers."""
    with SubscriberStore.open(postgres_url) as store:
        store.import_rows(ImportRow(i + 2, f"r{i}@example.com") for i in range(10))
    yield postgres_url
    postgres.close_pools()


def test_a_claim_skips_the_rows_another_sender_is_claiming(database: str) -> None:
    first = Ledger(connect(database), ISSUE)
    first.enqueue()
    locker = connect(database)
    locker.begin()
    locked = locker.execute(
        "SELECT subscriber_id FROM deliveries WHERE issue = ? ORDER BY subscriber_id LIMIT 4 "
        "FOR UPDATE",
        [ISSUE],
    ).fetchall()
    started = time.monotonic()
    taken = first.claim(10)
    assert time.monotonic() - started < 1.0  # no wait for the other transaction's locks
    assert {job.subscriber_id for job in taken}.isdisjoint(row[0] for row in locked)
    assert len(taken) == 6
    locker.execute("ROLLBACK")
    for conn in (locker, first.conn):
        conn.close()


def test_a_silent_sender_on_another_host_loses_its_claims_but_not_its_commit_point(
    database: str,
) -> None:
    gone = Ledger(connect(database), ISSUE, lease=0.3)
    gone.owner = f"elsewhere-{socket.gethostname()}:1:dead"  # not a process `reap` can check
    survivor = Ledger(connect(database), ISSUE)
    gone.enqueue()
    mine = gone.claim(5)
    gone.mark_sending(mine[0].subscriber_id, "<id@example>", "relay")
    assert len(survivor.claim(10, reap=True)) == 5  # the other half, without waiting
    assert survivor.claim(10, reap=True) == []  # the silent one's lease still holds
    time.sleep(0.4)
    taken = survivor.claim(10)
    assert sorted(job.subscriber_id for job in taken) == sorted(j.subscriber_id for j in mine[1:])
    assert survivor.uncertain() == 1 and survivor.counts()["sending"] == 1
    with pytest.raises(ClaimLost):
        gone.mark_sending(mine[1].subscriber_id, "<id2@example>", "relay")
    for conn in (gone.conn, survivor.conn):
        conn.close()
