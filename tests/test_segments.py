"""Segments of a send: several tags, excluded tags, tags nobody has, the catch-up
(--new-since-sent), and a resume that reaches exactly the same people; read from the outbox."""

from __future__ import annotations

import json
import mailbox
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.cli.send import _resume_command
from newsletter.config import Config, load_config
from newsletter.deliver import db
from newsletter.deliver.campaign import Campaign, SendOptions, SendRefused
from newsletter.deliver.db import MIGRATIONS
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.segments import EmptySegment, Segment

pytestmark = pytest.mark.usefixtures("each_database")

PEOPLE = {
    "ann@example.org": ("news",),
    "bob@example.org": ("sport",),
    "cat@example.org": ("news", "vip"),
    "dan@example.org": (),
    "eve@example.org": ("sport", "vip"),
}


@pytest.fixture
def issue(project: Path, write_issue: Callable[..., Path], runner: CliRunner) -> Path:
    for email, tags in PEOPLE.items():
        args = ["subscribers", "add", email, *(w for t in tags for w in ("--tag", t))]
        assert runner.invoke(app, args).exit_code == 0
    return write_issue()


def received(config: Config, slug: str = "small") -> list[str]:
    box = config.path(config.sending.outbox) / slug
    if not (box / "cur").exists():
        return []
    return sorted(message_from_bytes(m.as_bytes())["To"] for m in mailbox.Maildir(box))


def send(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["send", "issues/small", "--yes", *args])
    return result.exit_code, result.output


def test_any_of_several_tags_minus_excluded_ones(issue: Path, runner: CliRunner) -> None:
    code, output = send(runner, "--tag", "news", "--tag", "sport", "--exclude-tag", "vip")
    assert code == 0, output
    assert received(load_config()) == ["ann@example.org", "bob@example.org"]
    record = db.connect(Path("newsletter.db")).execute("SELECT segment, tag FROM sends").fetchone()
    assert Segment.decode(record[0]) == Segment(("news", "sport"), ("vip",))


def test_a_tag_nobody_active_has_sends_nothing_exit_2(issue: Path, runner: CliRunner) -> None:
    code, output = send(runner, "--tag", '"news"')  # a quoted tag, as exports spell them
    assert code == 2 and "no active subscriber has the tag" in output
    code, output = send(runner, "--tag", "news", "--exclude-tag", "vipp")  # a misspelt exclusion
    assert code == 2 and "'vipp'" in output
    runner.invoke(app, ["subscribers", "unsubscribe", "bob@example.org"])
    runner.invoke(app, ["subscribers", "unsubscribe", "eve@example.org"])
    code, output = send(runner, "--tag", "sport")  # the tag exists, but nobody active has it
    assert code == 2
    assert received(load_config()) == []


def test_the_resume_command_reaches_exactly_the_same_segment(
    issue: Path, runner: CliRunner
) -> None:
    config = load_config()
    options = SendOptions(segment=Segment(("news", "sport"), ("vip",)))
    stop = threading.Event()
    stop.set()  # stopped at once: the rows are queued, nothing is sent
    with Campaign(config, issue, options) as campaign:
        report = campaign.send(stop=stop)
        resume = _resume_command(Path("issues/small"), campaign, None)
    assert report.interrupted and received(config) == []
    words = shlex.split(resume)
    assert words[words.index("--exclude-tag") + 1] == "vip"
    other = runner.invoke(app, ["send", "issues/small", "--yes", "--tag", "news"])
    assert other.exit_code == 2 and "was started with" in other.output
    result = runner.invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    assert received(config) == ["ann@example.org", "bob@example.org"]


@pytest.mark.slow  # waits a second for the clock
def test_new_since_sent_reaches_only_the_newer_subscribers(issue: Path, runner: CliRunner) -> None:
    code, output = send(runner, "--new-since-sent")
    assert code == 2 and "has not been sent yet" in output
    assert send(runner, "--tag", "news")[0] == 0
    config = load_config()
    assert received(config) == ["ann@example.org", "cat@example.org"]
    time.sleep(1.1)  # status times are kept to the second
    runner.invoke(app, ["subscribers", "add", "new-news@example.org", "--tag", "news"])
    runner.invoke(app, ["subscribers", "add", "new-other@example.org"])
    code, output = send(runner, "--new-since-sent")  # in the segment it was sent to
    assert code == 0, output
    assert received(config) == ["ann@example.org", "cat@example.org", "new-news@example.org"]
    code, output = send(runner, "--new-since-sent", "--exclude-tag", "vip")  # a segment given
    assert code == 0, output
    assert "new-other@example.org" in received(config)
    assert len(received(config)) == 4  # the earlier readers not tagged news were never meant
    assert send(runner, "--new-since-sent")[0] == 0
    assert len(received(config)) == 4  # nobody gets it twice


def test_library_refusals(issue: Path) -> None:
    config = load_config()
    with (
        Campaign(config, issue, SendOptions(segment=Segment(("nobody",)))) as campaign,
        pytest.raises(EmptySegment),
    ):
        campaign.dry_run()
    stop = threading.Event()
    stop.set()
    with Campaign(config, issue, SendOptions(segment=Segment(("news",)))) as campaign:
        campaign.send(stop=stop)
    with pytest.raises(SendRefused):
        Campaign(config, issue, SendOptions(segment=Segment(("news",), ("vip",))))


@pytest.mark.sqlite_only  # an SQLite database from before the migration
def test_a_send_recorded_before_segments_keeps_its_tag(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    segments = next(i for i, script in enumerate(MIGRATIONS) if "ADD COLUMN segment" in script)
    for number, script in enumerate(MIGRATIONS[:segments], start=1):
        raw.executescript(f"{script}\nPRAGMA user_version = {number};")
    raw.execute(
        "INSERT INTO sends (issue, transport, tag, started_at, updated_at) "
        "VALUES ('old', 'outbox', 'news', 'then', 'then')"
    )
    raw.close()
    record = Ledger(db.connect(path), "old").record()
    assert record is not None and record.segment == Segment(("news",))


def test_a_scheduled_send_keeps_its_whole_segment(issue: Path, runner: CliRunner) -> None:
    from newsletter.cli.worker import send_scheduled
    from newsletter.deliver.schedule import ScheduleStore

    code, output = send(
        runner, "--at", "2099-01-01 07:00", "--tag", "news", "--tag", "sport",
        "--exclude-tag", "vip",
    )  # fmt: skip
    assert code == 0, output
    listing = runner.invoke(app, ["schedule", "list", "--json"])
    assert Segment.decode(json.loads(listing.output)[0]["tag"]).exclude == ("vip",)
    config = load_config()
    [row] = ScheduleStore(db.connect(config.database_location)).listing(every=True)
    assert send_scheduled(config, issue, row).sent == 2
    assert received(config) == ["ann@example.org", "bob@example.org"]
