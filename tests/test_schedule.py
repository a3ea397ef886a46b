"""Sending later: schedules in the database, claimed by exactly one worker, on an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.cli.worker import send_scheduled, start_worker
from newsletter.config import Config, load_config
from newsletter.deliver import db
from newsletter.deliver.schedule import Scheduled, ScheduleStore, parse_local_time
from newsletter.deliver.sender import SendReport
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.deliver.worker import Worker
from newsletter.errors import InputError, IssueError, Problem

pytestmark = pytest.mark.usefixtures("each_database")

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def store(project: Path) -> ScheduleStore:
    return ScheduleStore(db.connect(project / "newsletter.db"))


def schedule(project: Path, slug: str, due: dt.datetime, now: dt.datetime = START) -> Scheduled:
    return store(project).add(slug, f"issues/{slug}", due, "Europe/Paris", now)


def add_readers(project: Path, count: int) -> None:
    readers = SubscriberStore.open(project / "newsletter.db")
    for i in range(count):
        readers.add(f"reader{i}@example.com", f"Reader{i}", tags=("first",) * (i < 2))


def outbox_count(project: Path, slug: str) -> int:
    folder = project / "outbox" / slug / "new"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def fake_send(
    calls: list[str], pause: float = 0.0
) -> Callable[[Config, Path, Scheduled], SendReport]:
    lock = threading.Lock()

    def send(config: Config, issue_dir: Path, row: Scheduled) -> SendReport:
        with lock:
            calls.append(issue_dir.name)
        time.sleep(pause)
        return SendReport(row.issue, "outbox", pending=3, sent=3)

    return send


def test_times_are_read_in_the_given_zone() -> None:
    due = parse_local_time("2026-12-04 07:00", "Europe/Paris")
    assert due.astimezone(dt.UTC) == START
    assert parse_local_time("2026-07-01T07:00", "Europe/Paris").utcoffset() == dt.timedelta(hours=2)
    with pytest.raises(InputError, match=r"--at.*write it like 2026-12-04 07:00"):
        parse_local_time("next friday", "UTC")
    with pytest.raises(InputError, match="'Mars/Olympus' is not a time zone"):
        parse_local_time("2026-12-04 07:00", "Mars/Olympus")


def test_a_schedule_is_in_the_future_and_one_per_issue(project: Path) -> None:
    with pytest.raises(InputError, match="in the past"):
        schedule(project, "a", START - dt.timedelta(minutes=1, seconds=1))
    schedule(project, "just-passed", START - dt.timedelta(seconds=30))
    row = schedule(project, "a", START + dt.timedelta(hours=1))
    assert row.status == "scheduled" and row.local_due.hour == 8
    with pytest.raises(InputError, match="already scheduled"):
        schedule(project, "a", START + dt.timedelta(hours=2))
    store(project).cancel(row.id, START)
    with pytest.raises(InputError, match="is cancelled"):
        store(project).cancel(row.id, START)
    assert [row.issue for row in store(project).listing()] == ["just-passed"]
    schedule(project, "a", START + dt.timedelta(hours=2))
    statuses = [(r.issue, r.status) for r in store(project).listing(every=True)]
    assert statuses == [("just-passed", "scheduled"), ("a", "cancelled"), ("a", "scheduled")]


def test_only_one_of_many_racing_claims_wins(project: Path) -> None:
    schedule(project, "a", START + dt.timedelta(seconds=1))
    now = START + dt.timedelta(seconds=2)
    stores = [store(project) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    won: list[Scheduled | None] = [None] * len(stores)

    def claim(index: int) -> None:
        barrier.wait(timeout=10)
        won[index] = stores[index].claim_due(f"w{index}", now, LEASE)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    winners = [row for row in won if row is not None]
    assert len(winners) == 1 and winners[0].status == "sending"


def test_nothing_is_claimed_before_it_is_due(project: Path) -> None:
    schedule(project, "a", START + dt.timedelta(minutes=10))
    assert store(project).claim_due("w", START + dt.timedelta(minutes=9), LEASE) is None
    assert store(project).claim_due("w", START + dt.timedelta(minutes=10), LEASE) is not None


def test_a_dead_workers_claim_is_taken_over_only_after_its_lease(project: Path) -> None:
    schedule(project, "a", START + dt.timedelta(seconds=1))
    now = START + dt.timedelta(seconds=1)
    assert store(project).claim_due("dead", now, LEASE) is not None
    assert store(project).claim_due("other", now + LEASE - dt.timedelta(seconds=1), LEASE) is None
    taken = store(project).claim_due("other", now + LEASE + dt.timedelta(seconds=1), LEASE)
    assert taken is not None and taken.worker == "other"
    assert not store(project).renew(taken.id, "dead", now, LEASE)


def test_two_workers_send_a_due_issue_exactly_once(project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    schedule(project, "a", START + dt.timedelta(minutes=1))
    clock = Clock(START + dt.timedelta(minutes=1))
    calls: list[str] = []
    workers = [Worker(config, fake_send(calls, pause=0.3), clock=clock) for _ in range(2)]
    threads = [threading.Thread(target=worker.run_due) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == ["a"]
    [row] = store(project).listing(every=True)
    assert row.status == "sent" and row.result.startswith("sent 3, deferred 0, failed 0")
    for worker in workers:  # restarted later: nothing to do
        assert worker.run_due() == 0
    assert calls == ["a"]


def test_a_worker_starting_late_reports_instead_of_sending(project: Path) -> None:
    config = load_config(project / "newsletter.toml")  # grace: 60 minutes
    schedule(project, "old", START + dt.timedelta(hours=1))
    schedule(project, "recent", START + dt.timedelta(hours=2, minutes=30))
    lines: list[str] = []
    calls: list[str] = []
    clock = Clock(START + dt.timedelta(hours=3))
    worker = Worker(config, fake_send(calls), clock=clock, report=lines.append)
    missed = worker.start()
    assert [row.issue for row in missed] == ["old"]
    assert any(line.startswith("missed: old was due 2026-12-04 08:00 CET") for line in lines)
    assert "newsletter send issues/old" in lines[0]
    assert worker.run_due() == 1
    assert calls == ["recent"]
    statuses = {row.issue: row.status for row in store(project).listing(every=True)}
    assert statuses == {"old": "missed", "recent": "sent"}


def test_a_refused_send_fails_its_schedule_and_the_worker_goes_on(project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    schedule(project, "bad", START + dt.timedelta(minutes=1))
    schedule(project, "good", START + dt.timedelta(minutes=2))
    calls: list[str] = []

    def send(config: Config, issue_dir: Path, row: Scheduled) -> SendReport:
        if row.issue == "bad":
            raise IssueError(Problem("is a draft", issue_dir / "issue.md"))
        return fake_send(calls)(config, issue_dir, row)

    worker = Worker(config, send, clock=Clock(START + dt.timedelta(minutes=5)))
    assert worker.run_due() == 2
    rows = {row.issue: row for row in store(project).listing(every=True)}
    assert rows["bad"].status == "failed" and "is a draft" in rows["bad"].result
    assert rows["good"].status == "sent"


def test_a_restarted_worker_finishes_a_send_without_repeating_anyone(
    runner: CliRunner, project: Path, example: Path
) -> None:
    add_readers(project, 5)
    config = load_config(project / "newsletter.toml")
    first = runner.invoke(app, ["send", str(example), "--yes", "--tag", "first"])
    assert first.exit_code == 0, first.stderr
    assert outbox_count(project, example.name) == 2
    schedule(project, example.name, START + dt.timedelta(minutes=1))
    clock = Clock(START + dt.timedelta(minutes=1))
    assert store(project).claim_due("died", clock(), LEASE) is not None  # then it was killed
    worker = Worker(config, send_scheduled, clock=clock)
    assert worker.run_due() == 0  # the dead worker's lease still runs
    clock.advance(minutes=6)
    assert worker.run_due() == 1
    assert outbox_count(project, example.name) == 5
    [row] = store(project).listing(every=True)
    assert row.status == "sent" and "skipped 2 already sent" in row.result


def test_send_at_then_list_status_and_cancel(
    runner: CliRunner, project: Path, example: Path
) -> None:
    result = runner.invoke(
        app, ["send", str(example), "--at", "2099-12-04 07:00", "--tz", "Europe/Paris"]
    )
    assert result.exit_code == 0, result.stderr
    assert "for 2099-12-04 07:00 CET (schedule 1)" in result.stdout
    listed = json.loads(runner.invoke(app, ["schedule", "list", "--json"]).stdout)
    assert listed == [{"id": 1, "issue": example.name, "due": "2099-12-04T07:00:00+01:00",
                       "status": "scheduled", "tag": None, "result": ""}]  # fmt: skip
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert status == [{"issue": example.name, "state": "scheduled for 2099-12-04 07:00 CET"}]
    again = runner.invoke(app, ["send", str(example), "--at", "2099-12-05 07:00"])
    assert again.exit_code == 2 and "already scheduled" in again.stderr
    cancelled = runner.invoke(app, ["schedule", "cancel", "1"])
    assert cancelled.exit_code == 0 and "Cancelled schedule 1" in cancelled.stdout
    assert "Nothing is scheduled." in runner.invoke(app, ["schedule", "list"]).stdout
    past = runner.invoke(app, ["send", str(example), "--at", "2001-01-01 07:00"])
    assert past.exit_code == 2 and "in the past" in past.stderr
    both = runner.invoke(app, ["send", str(example), "--at", "2099-01-01 07:00", "--dry-run"])
    assert both.exit_code == 2 and "leave out --dry-run" in both.stderr


def test_send_at_uses_the_configured_time_zone(
    runner: CliRunner, project: Path, example: Path
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[schedule]\ntimezone = "America/New_York"\n')
    result = runner.invoke(app, ["send", str(example), "--at", "2099-07-04 09:30", "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"due": "2099-07-04T09:30:00-04:00"' in result.stdout


def test_a_draft_cannot_be_scheduled(runner: CliRunner, write_issue: Callable[..., Path]) -> None:
    from conftest import MINIMAL_FRONT

    folder = write_issue(front=MINIMAL_FRONT + "status: draft\n")
    result = runner.invoke(app, ["send", str(folder), "--at", "2099-12-04 07:00"])
    assert result.exit_code == 2 and "is a draft" in result.stderr


def test_serve_s_worker_thread_sends_when_due_and_stops(project: Path, example: Path) -> None:
    add_readers(project, 3)
    config_file = project / "newsletter.toml"
    config_file.write_text(config_file.read_text() + "\n[schedule]\npoll_seconds = 0.1\n")
    config = load_config(config_file)
    now = dt.datetime.now(dt.UTC)
    store(project).add(example.name, f"issues/{example.name}", now + dt.timedelta(seconds=0.5),
                       "UTC", now)  # fmt: skip
    stop = threading.Event()
    thread = start_worker(config, stop)
    deadline = time.monotonic() + 20
    while outbox_count(project, example.name) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outbox_count(project, example.name) == 3
    assert store(project).listing(every=True)[0].status == "sent"


def test_worker_once_sends_what_is_due_and_reports_it(
    runner: CliRunner, project: Path, example: Path
) -> None:
    add_readers(project, 2)
    now = dt.datetime.now(dt.UTC)
    store(project).add(example.name, f"issues/{example.name}", now - dt.timedelta(seconds=30),
                       "UTC", now)  # fmt: skip
    result = runner.invoke(app, ["worker", "--once"])
    assert result.exit_code == 0, result.stderr
    assert f"sending {example.name}" in result.stderr
    assert f"sent: {example.name}: sent 2, deferred 0, failed 0" in result.stderr
    assert outbox_count(project, example.name) == 2
