"""Chaos: two `send` processes share one issue against a faulty server, and each is killed with
SIGKILL at random moments and restarted until the ledger is done. Exactly one copy per
deliverable reader, bounces recorded, and any reader without a copy reported uncertain.

The server (aiosmtpd) answers 451 to one address in ten (the first time), 550 to five
addresses, drops the connection in the middle of every 97th DATA and stalls one connection at
MAIL for longer than the relay's timeout; it offers SMTPUTF8. Fifty of the 2,000 addresses
need IDNA and SMTPUTF8 (accented Latin, Danish, Greek, Chinese; Unicode domains).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import idna
from smtp_sink import Sink, running_sink
from test_crash_safety import start_send

from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import ImportRow, Status, SubscriberStore

SUBSCRIBERS = 2000
KILLS_PER_PROCESS = 2
TIMEOUT = 1.5
DEADLINE = 180.0


INTERNATIONAL = 50
#: Addresses that need IDNA (the domain) and SMTPUTF8 (the local part), in several scripts.
_SCRIPTS = ("élodie{}@exemple.fr", "søren{}@eksempel.dk", "δοκιμή{}@παράδειγμα.gr",
            "用户{}@例子.中国", "ana{}@bücher.de")  # fmt: skip


def addresses(count: int) -> list[str]:
    """The readers' addresses, the last INTERNATIONAL of them beyond ASCII."""
    plain = [f"reader{i}@example.com" for i in range(count - INTERNATIONAL)]
    return plain + [_SCRIPTS[i % len(_SCRIPTS)].format(i) for i in range(INTERNATIONAL)]


def unicode_form(address: str) -> str:
    """An address as the store keeps it: the domain back from IDNA (punycode)."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{idna.decode(domain)}" if "xn--" in domain else address


def test_two_killed_and_restarted_processes_deliver_each_copy_once(
    example: Path, project: Path, smtp_project: Callable[..., Path]
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    emails = addresses(SUBSCRIBERS)
    with SubscriberStore.open(project / "newsletter.db") as store:
        store.import_rows(ImportRow(i + 2, e, f"N{i}", "", (), {}) for i, e in enumerate(emails))
    hard = set(rng.sample(emails, 5))
    refused_once: set[str] = set()

    def refuse(address: str) -> str | None:
        address = unicode_form(address)
        if address in hard:
            return "550 5.1.1 No such user"
        if zlib.crc32(address.encode()) % 10 == 0 and address not in refused_once:
            refused_once.add(address)
            return "451 4.3.0 Try again later"
        return None

    sink = Sink(
        refuse=refuse,
        drop_every_data=97,
        stall=lambda connection: TIMEOUT + 2.5 if connection == 3 else 0.0,
    )
    database = project / "newsletter.db"
    started = time.monotonic()
    finished: list[subprocess.CompletedProcess[str]] = []
    with running_sink(sink) as port:
        config = smtp_project(port, connections=2)
        config.write_text(config.read_text().replace("timeout = 5", f"timeout = {TIMEOUT}"))

        def launch() -> tuple[subprocess.Popen[str], float]:
            return start_send(project, example), time.monotonic() + rng.uniform(0.8, 4.0)

        slots = [launch(), launch()]
        kills = [0, 0]
        while True:
            assert time.monotonic() - started < DEADLINE, f"not done in time (seed {seed})"
            for i, (process, kill_at) in enumerate(slots):
                if (
                    process.poll() is None
                    and kills[i] < KILLS_PER_PROCESS
                    and (time.monotonic() >= kill_at)
                ):
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    kills[i] += 1
                    slots[i] = launch()
            if all(process.poll() is not None for process, _ in slots):
                for process, _ in slots:
                    out, err = process.communicate()
                    finished.append(subprocess.CompletedProcess(process.args, process.returncode,
                                                                out, err))  # fmt: skip
                    assert process.returncode == 0, f"{err} (seed {seed})"
                counts = Ledger(connect(database), example.name).counts()
                if counts["queued"] == counts["deferred"] == 0:
                    break
                slots = [(start_send(project, example), float("inf")) for _ in range(2)]
            time.sleep(0.02)
    received = Counter({unicode_form(a): n for a, n in sink.per_recipient().items()})
    assert sum(1 for a in received if not a.isascii()) >= INTERNATIONAL - 5  # they got through
    ledger = Ledger(connect(database), example.name)
    counts = ledger.counts()
    status = subprocess.run(
        [sys.executable, "-m", "newsletter", "status", str(example), "--json"],
        cwd=project, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    reported = json.loads(status.stdout)
    uncertain = {row["email"] for row in reported["problems"] if row["status"] == "sending"}
    assert len(uncertain) == reported["counts"]["sending"]
    assert max(received.values()) == 1, f"a reader got two copies (seed {seed})"
    assert not set(received) & hard
    missing = set(emails) - hard - set(received)
    assert missing <= uncertain, f"readers without a copy and not reported (seed {seed})"
    assert counts["failed"] == 5 and counts["sent"] + counts["sending"] == SUBSCRIBERS - 5
    with SubscriberStore.open(database) as store:
        assert {store.get(a).status for a in hard} == {Status.BOUNCED}  # type: ignore[union-attr]
    if uncertain:
        assert any(f"{len(uncertain)} copies are uncertain" in run.stderr for run in finished)
    assert sink.connections > 3 and sink.datas >= SUBSCRIBERS  # the faults happened
