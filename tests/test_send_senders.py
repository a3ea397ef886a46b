"""Several senders, one issue, on PostgreSQL: three `send` processes share 5,000 readers, one
is killed with SIGKILL mid-send and not restarted. Every reader gets exactly one copy or is
reported uncertain, and the relay's rate holds across the processes together.

The sink (aiosmtpd on 127.0.0.1) records when each message began (MAIL) and arrived (the final
"."). The rate limit governs when a message begins, so MAIL times are held to it: at most
rate + BURST + 1 in any second (relay_budget.py, sender.RateLimiter), give or take what the
sink's own clock adds; arrivals also carry the jitter of the hand-over itself (the data, the
commit point's write), for which a little more is allowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from smtp_sink import Sink, running_sink
from test_relay_budget import most_in_window

from newsletter.deliver import postgres
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.sender import BURST
from newsletter.deliver.subscribers import ImportRow, SubscriberStore

pytestmark = pytest.mark.slow

READERS = 5000
RATE = 400
PROCESSES = 3
DEADLINE = 120.0
#: What the sink's clock may add to a second's count: the starts reach it over loopback and
#: through its event loop (10 ms at RATE); the arrivals also after the data and the commit
#: point's write (25 ms).
STARTS_JITTER = 4
ARRIVALS_JITTER = 10


@dataclass
class TimedSink(Sink):
    """Records each message's recipient, when it began (MAIL) and when it arrived."""

    times: list[tuple[str, float, float]] = field(default_factory=list)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.began = time.time()
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.times.append((rcpt, envelope.began, arrived))
        return "250 2.0.0 Queued"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.times)


def start_send(project: Path, example: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", str(example), "--yes"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_three_senders_one_killed_share_the_list_and_the_rate(
    write_issue: Callable[..., Path], project: Path, postgres_url: str
) -> None:
    example = write_issue()  # a short issue: the sink in this process takes it faster
    emails = [f"reader{i}@example.com" for i in range(READERS)]
    with SubscriberStore.open(postgres_url) as store:
        store.import_rows(ImportRow(i + 2, e, f"N{i}") for i, e in enumerate(emails))
    sink = TimedSink()
    started = time.monotonic()
    with running_sink(sink) as port:
        config = project / "newsletter.toml"
        config.write_text(
            f'database = "{postgres_url}"\n{config.read_text()}'
            '\n[sending]\ntransport = "smtp"\n\n[[smtp]]\nname = "sink"\nhost = "127.0.0.1"\n'
            f'port = {port}\nsecurity = "none"\ntimeout = 5\nconnections = 4\nrate = "{RATE}/s"\n'
        )
        senders = [start_send(project, example) for _ in range(PROCESSES)]
        victim = senders[0]
        while sink.count < READERS // 3:
            assert time.monotonic() - started < DEADLINE, "the send did not get going"
            assert all(sender.poll() is None for sender in senders), senders[0].communicate()
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=10)  # reaped: its claims are a dead process's now
        finished = [
            sender.communicate(timeout=max(1.0, DEADLINE - (time.monotonic() - started)))
            for sender in senders[1:]
        ]
        for sender, (_, err) in zip(senders[1:], finished, strict=True):
            assert sender.returncode == 0, err
    seconds = time.monotonic() - started
    ledger = Ledger(connect(postgres_url), example.name)
    counts = ledger.counts()
    uncertain = {row["email"] for row in ledger.problems(limit=READERS)
                 if row["status"] == "sending"}  # fmt: skip
    ledger.conn.close()
    postgres.close_pools()
    received = Counter(rcpt for rcpt, _, _ in sink.times)
    assert max(received.values()) == 1, "a reader got two copies"
    assert counts["queued"] == counts["deferred"] == counts["failed"] == 0, counts
    assert counts["sent"] + counts["sending"] == READERS
    assert set(emails) - set(received) <= uncertain, "readers without a copy, not reported"
    assert len(uncertain) <= 8  # at most what the killed process had in flight
    if uncertain:  # and the survivors say so
        assert all(f"{len(uncertain)} copies are uncertain" in err for _, err in finished)
    starts = sorted(t for _, t, _ in sink.times)
    began = most_in_window(starts, 1.0)
    arrived = most_in_window([t for _, _, t in sink.times], 1.0)
    print(f"{READERS} readers in {seconds:.1f} s ({starts[-1] - starts[0]:.1f} s from the first "
          f"message to the last), {counts['sending']} uncertain; the busiest second: {began} "
          f"begun, {arrived} arrived (rate {RATE}/s)")  # fmt: skip
    assert began <= RATE + BURST + 1 + STARTS_JITTER
    assert arrived <= RATE + BURST + 1 + ARRIVALS_JITTER
