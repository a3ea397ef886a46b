"""`send` under faults, as a separate process where it is interrupted: a stalled server and a
signal, an interrupted segment send and its resume, replies lost after the final '.', a
database whose disk fills up or that is read-only."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smtp_sink import Sink, running_sink, stalled_server
from test_crash_safety import populate, start_send, wait_until
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver import db
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import ImportRow, SubscriberStore

pytestmark = pytest.mark.usefixtures("each_database")

Configure = Callable[..., Path]


def ledger_of(database: Path, example: Path) -> Ledger:
    return Ledger(db.connect(database), example.name)


@pytest.mark.sqlite_only  # signals and a stalled server: nothing about the database
@pytest.mark.parametrize("stage", ["greeting", "mail"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_a_send_to_a_stalled_server_within_5_s(
    sig: signal.Signals, stage: str, example: Path, project: Path, smtp_project: Configure
) -> None:
    populate(project, 20)
    with contextlib.ExitStack() as stack:
        if stage == "greeting":
            stalled = stack.enter_context(stalled_server())
            port, ready = stalled.port, lambda: len(stalled.held) >= 2
        else:
            sink = Sink(stall=lambda connection: 120.0)
            port, ready = stack.enter_context(running_sink(sink)), lambda: sink.connections >= 2
        config = smtp_project(port)
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 120"))
        process = start_send(project, example)
        wait_until(ready, process, 30)
        time.sleep(0.3)  # the workers are blocked in the server's silence
        signalled = time.monotonic()
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - signalled
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    assert process.returncode == 130, err
    assert "To resume, run: newsletter send" in err and "Traceback" not in err
    counts = ledger_of(project / "newsletter.db", example).counts()
    assert counts["sent"] == counts["sending"] == 0 and counts["queued"] == 20


RELAY_ONLY = """
[sending]
retry_delay = 0.05

[[smtp]]
name = "relay"
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5
connections = 2
"""


def test_resume_goes_exactly_where_the_interrupted_send_went(example: Path, project: Path) -> None:
    store = SubscriberStore.open(project / "newsletter.db")
    emails = [f"t{i}@example.com" for i in range(300)]
    for i, email in enumerate(emails):
        store.add(email, tags=("weekly",) if i % 2 == 0 else ())
    weekly = emails[0::2]
    sink = Sink()
    with running_sink(sink) as port:
        config = project / "newsletter.toml"  # the default transport stays the outbox
        config.write_text(config.read_text() + RELAY_ONLY.format(port=port))
        # 50/s: the 150 copies take 3 s, so each Ctrl-C below comes while the send runs,
        # even when a busy machine wakes the test late
        first = start_send(project, example, "--transport", "smtp", "--tag", "weekly",
                           "--rate", "50/s")  # fmt: skip
        wait_until(lambda: sink.count >= 20, first, 60)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 130, err
        resume = re.search(r"To resume, run: (.+)", err)
        assert resume, err
        words = shlex.split(resume.group(1))
        assert words[:2] == ["newsletter", "send"]
        assert "--transport" in words and "smtp" in words and "weekly" in words
        for other in (["--transport", "outbox"], ["--tag", "monthly"]):
            refused = subprocess.run(
                [sys.executable, "-m", "newsletter", "send", str(example), "--yes", *other],
                cwd=project, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert refused.returncode == 2, refused.stderr
            assert "was started with --transport smtp" in refused.stderr
            assert "--force" in refused.stderr
        second = subprocess.Popen(
            [sys.executable, "-m", "newsletter", *words[1:]],
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        reached = sink.count + 20
        wait_until(lambda: sink.count >= reached, second, 60)
        second.send_signal(signal.SIGINT)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 130, err
        assert f"To resume, run: {resume.group(1)}" in err
        plain = start_send(project, example)
        _, err = plain.communicate(timeout=120)
    assert plain.returncode == 0, err
    received = sink.per_recipient()
    assert sorted(received) == sorted(weekly)
    assert set(received.values()) == {1}
    assert not (project / "outbox").exists()


def test_a_reply_lost_after_the_final_dot_is_uncertain_and_never_resent(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = populate(project, 40)
    dropped = set(emails[5::8])
    sink = Sink(drop_before_reply=lambda address: address in dropped)
    with running_sink(sink) as port:
        smtp_project(port)
        first = runner.invoke(app, ["send", str(example), "--yes"])
        again = runner.invoke(app, ["send", str(example), "--yes"])
    assert first.exit_code == 0, first.stderr
    assert "5 copies are uncertain" in first.stderr and "not resent" in first.stderr
    received = sink.per_recipient()
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
    ledger = ledger_of(project / "newsletter.db", example)
    uncertain = {row["email"] for row in ledger.problems() if row["status"] == "sending"}
    assert uncertain == dropped
    assert ledger.counts()["sent"] == 35
    assert again.exit_code == 0 and "5 copies are uncertain" in again.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of our own (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system for the database needs root and mount(8)")
    point = tmp_path / "disk"
    point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def use_database(project: Path, database: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(f'database = "{database}"\n' + config.read_text())


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` up to `leave` bytes short of full."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def single_error_line(err: str, words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], err


@pytest.mark.sqlite_only  # the SQLite file on a full or read-only disk
def test_a_full_disk_stops_the_send_in_one_line_and_a_rerun_completes(
    example: Path, project: Path, smtp_project: Configure, small_disk: Path
) -> None:
    database = small_disk / "newsletter.db"
    use_database(project, database)
    emails = [f"d{i}@example.com" for i in range(300)]
    with SubscriberStore.open(database) as store:
        store.import_rows(ImportRow(i + 2, e, "", "", (), {}) for i, e in enumerate(emails))
    filler = fill(small_disk, 256 * 1024)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port, connections=2)
        process = start_send(project, example)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 1, err
        single_error_line(err, "the disk is full")
        assert 0 < sink.count < 300
        filler.unlink()
        rerun = start_send(project, example)
        _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    received = sink.per_recipient()
    assert max(received.values()) == 1, "a reader got two copies"
    ledger = ledger_of(database, example)
    uncertain = {row["email"] for row in ledger.problems() if row["status"] == "sending"}
    assert set(emails) - set(received) <= uncertain
    assert len(uncertain) <= 2  # at most the copies in flight when the disk filled
    assert ledger.counts()["queued"] == 0


@pytest.mark.sqlite_only  # the SQLite file on a full or read-only disk
def test_a_read_only_database_is_one_line_and_a_rerun_completes(
    example: Path, project: Path, smtp_project: Configure, small_disk: Path
) -> None:
    database = small_disk / "newsletter.db"
    use_database(project, database)
    store = SubscriberStore.open(database)
    emails = [f"r{i}@example.com" for i in range(30)]
    for email in emails:
        store.add(email)
    store.conn.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port)
        process = start_send(project, example)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 1, err
        single_error_line(err, "read-only")
        assert sink.count == 0
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        rerun = start_send(project, example)
        _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    received = sink.per_recipient()
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}


def test_a_second_send_of_the_same_issue_says_so_and_shares_the_work(
    example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = populate(project, 150)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port, connections=1)
        first = start_send(project, example, "--rate", "40/s")
        wait_until(lambda: sink.count >= 5, first, 60)
        second = start_send(project, example, "--rate", "40/s")
        outs = [process.communicate(timeout=60) for process in (first, second)]
    assert first.returncode == second.returncode == 0, outs
    assert "Another send of" in outs[1][1] and "joins it" in outs[1][1]
    sent = [int(re.search(r"Sent (\d+),", out).group(1)) for out, _ in outs]  # type: ignore[union-attr]
    assert min(sent) > 0 and sum(sent) == 150
    received = sink.per_recipient()
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}


def test_a_connection_that_stalls_times_out_and_its_copy_is_retried(
    runner: CliRunner, example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = populate(project, 12)
    sink = Sink(stall=lambda connection: 3.0 if connection == 1 else 0.0)
    with running_sink(sink) as port:
        config = smtp_project(port, connections=1)
        config.write_text(config.read_text().replace("timeout = 5", "timeout = 1"))
        started = time.monotonic()
        result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 30
    received = sink.per_recipient()
    assert sorted(received) == sorted(emails) and set(received.values()) == {1}
    assert sink.connections >= 2  # the stalled one was given up and a new one opened


@pytest.mark.sqlite_only  # connections to the relay, not the database
def test_when_every_connection_is_gone_the_send_stops_with_one_reason(
    example: Path, project: Path, smtp_project: Configure
) -> None:
    emails = populate(project, 200)
    sink = Sink()
    with running_sink(sink) as port:
        smtp_project(port, connections=2)
        process = start_send(project, example, "--rate", "50/s")
        wait_until(lambda: sink.count >= 10, process, 60)
    _, err = process.communicate(timeout=60)  # the server is gone: no connection can be made
    assert process.returncode == 1, err
    assert "every connection was lost" in err and "Traceback" not in err
    assert "To resume, run: newsletter send" in err
    counts = ledger_of(project / "newsletter.db", example).counts()
    assert counts["sent"] + counts["sending"] + counts["queued"] == 200
    assert counts["queued"] >= 200 - sink.count - 2  # at most one in flight per connection
    with running_sink(sink) as port:
        config = project / "newsletter.toml"
        config.write_text(re.sub(r"port = \d+", f"port = {port}", config.read_text()))
        rerun = start_send(project, example)
        _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    received = sink.per_recipient()
    assert max(received.values()) == 1
    ledger = ledger_of(project / "newsletter.db", example)
    uncertain = {row["email"] for row in ledger.problems() if row["status"] == "sending"}
    assert set(emails) - set(received) <= uncertain and ledger.counts()["queued"] == 0
