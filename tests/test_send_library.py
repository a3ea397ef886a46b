"""The send as a library (newsletter.deliver.campaign), and the sender under errors of any kind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from smtp_sink import Sink, running_sink

from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.deliver import campaign, db
from newsletter.deliver.campaign import SendOptions
from newsletter.deliver.ledger import ClaimLost, Ledger
from newsletter.deliver.message import MessageFactory
from newsletter.deliver.segments import Segment
from newsletter.deliver.sender import Lane, Policy, SendReport, send_issue
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.deliver.transports import MaildirTransport

pytestmark = pytest.mark.usefixtures("each_database")

Configure = Callable[..., Path]


def add(
    project: Path, count: int, tags: Callable[[int], tuple[str, ...]] = lambda i: ()
) -> list[str]:
    store = SubscriberStore.open(project / "newsletter.db")
    emails = [f"lib{i}@example.com" for i in range(count)]
    for i, email in enumerate(emails):
        store.add(email, first_name=f"N{i}", tags=tags(i))
    store.conn.close()
    return emails


def test_a_whole_send_through_the_library(
    example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = add(project, 25, lambda i: ("weekly",) if i % 2 else ())
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        config = load_config()
        dry = campaign.dry_run(config, example, SendOptions(segment=Segment(("weekly",))))
        assert dry.would_send == 12 and dry.transport == "smtp" and sink.count == 0
        test = campaign.test_send(config, example, ["editor@example.org"])
        assert [r.to for r in test.results if r.ok] == ["editor@example.org"]
        seen: list[int] = []
        report = campaign.send(
            config,
            example,
            SendOptions(segment=Segment(("weekly",))),
            on_progress=lambda r: seen.append(r.done),
        )
        assert report.sent == 12 and report.failed == report.uncertain == 0
        assert seen[-1] == 12
        # That send is finished: a plain send is a new one, to everyone who has not had it.
        again = campaign.send(config, example)
        assert again.sent == len(emails) - 12 and again.skipped_sent == 12
    received = sink.per_recipient()
    assert sorted(received) == sorted([*emails, "editor@example.org"])
    assert set(received.values()) == {1}


class Exploding(MaildirTransport):
    """The outbox, with a programming error on some copies (before or after the commit point)."""

    def __init__(self, folder: Path, before: set[str], after: set[str]) -> None:
        super().__init__(folder)
        self.before, self.after = before, after

    def send(
        self, sender: str, recipient: str, data: bytes, commit_point: Callable[[], None]
    ) -> str:
        if recipient in self.before:
            raise ValueError(f"boom before {len(data)} bytes")
        if recipient in self.after:
            commit_point()
            raise KeyError("after the commit point")
        return super().send(sender, recipient, data, commit_point)


def test_an_arbitrary_exception_fails_only_its_copy(example: Path, project: Path) -> None:
    emails = add(project, 40)
    before, after = set(emails[3::10]), {emails[7]}
    config = load_config()
    factory = MessageFactory(build_issue(load_issue(example), config), config, signer_for(config))
    database = project / "newsletter.db"
    ledger = Ledger(db.connect(database), example.name)
    lanes = [Lane(Exploding(project / "outbox", before, after)) for _ in range(2)]
    done = threading.Event()
    results: list[SendReport] = []

    def run() -> None:
        report = send_issue(factory, ledger, SubscriberStore.open(database), lanes,
                            policy=Policy(retry_delay=0))  # fmt: skip
        results.append(report)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert done.wait(30), "the send hung"
    [report] = results
    assert (report.sent, report.failed, report.uncertain) == (40 - 5, 4, 1)
    rows = {row["email"]: row for row in ledger.problems()}
    assert {email for email, row in rows.items() if row["status"] == "failed"} == before
    assert all("ValueError: boom before" in rows[email]["last_reply"] for email in before)
    assert rows[emails[7]]["status"] == "sending" and "KeyError" in rows[emails[7]]["last_reply"]
    assert len(list((project / "outbox" / "new").iterdir())) == 35


def test_claims_are_exclusive_and_leases_expire(example: Path, project: Path) -> None:
    add(project, 10)
    database = project / "newsletter.db"
    first = Ledger(db.connect(database), example.name, lease=0.3)
    second = Ledger(db.connect(database), example.name, lease=30)
    first.enqueue()
    mine = first.claim(6)
    theirs = second.claim(10)
    assert len(mine) == 6 and len(theirs) == 4
    assert not {j.subscriber_id for j in mine} & {j.subscriber_id for j in theirs}
    first.mark_sending(mine[0].subscriber_id, "<id>", "outbox")  # reaches the commit point
    assert second.held_elsewhere() == [first.owner]
    time.sleep(0.4)  # the first process stops renewing: its lease runs out
    taken = second.claim(10)
    assert sorted(j.subscriber_id for j in taken) == sorted(j.subscriber_id for j in mine[1:])
    assert second.uncertain() == 1  # the one that reached `sending` is never claimed again
    with pytest.raises(ClaimLost):  # the first process wakes up: it may not send any more
        first.mark_sending(mine[1].subscriber_id, "<id>", "outbox")
