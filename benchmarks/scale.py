"""Benchmark sending past one machine: 1, 2 and 4 `newsletter send` processes sharing one issue
on PostgreSQL, against one process on SQLite, and what a ledger claim costs on each database.

Run from anywhere as `python benchmarks/scale.py [--subscribers N] [--connections C]
[--rounds R] [--quick] [--pg-no-sync] [--json]`.

Setup, none of it measured (as in benchmarks/send.py, whose helpers it uses): two temporary
projects get a copy of `newsletter.toml` (sending to the sink over C connections per process),
`assets/` and the example issue; one keeps its SQLite `newsletter.db`, the other says
`database = "postgresql://…"` (its password in NEWSLETTER_DATABASE_PASSWORD) for a throwaway
cluster from `tests/postgres_server.py`. By default that cluster keeps PostgreSQL's durable
defaults (fsync on, synchronous commits), the realistic figure; `--pg-no-sync` runs it as the
test suite does (fsync, synchronous_commit and full_page_writes off). Both databases get the same
N subscribers through `SubscriberStore.import_rows`. The SMTP server is `tests/smtp_sink.py --tally`
run as its own process: a bare asyncio SMTP responder on 127.0.0.1 (aiosmtpd, which benchmarks/
send.py uses, handles DATA line by line and caps a small machine near 150 copies a second, below
what the senders do), discarding every message and counting messages and distinct recipients.

1. Throughput. Four configurations: SQLite with one process, PostgreSQL with 1, 2 and 4
   processes. Each run copies the example issue under a slug of its own (so its ledger starts
   empty) and starts the processes together (`newsletter send issues/SLUG --yes --json
   --skip-url-check`, each with C connections): the rate is N over the wall time from the start of
   the first process to the end of the last (process start-up and the issue's build included);
   the rate over the longest send loop (the processes' own `seconds`) is shown beside it. After
   each run the sink must have taken exactly N messages for N distinct recipients, every process
   must have exited 0, and the ledger must say `sent` N times. R rounds (at least 2), each running
   every configuration once in an order rotated by one per round; the figure is the median.
2. Ledger cost, measured directly on both databases, alternating, R times: under a fresh slug
   `Ledger.enqueue()`, then `Ledger.claim(B)` until M rows are held (B = the claim size a send
   with C connections uses), then for each row the commit point alone (`mark_sending`, one
   writer, so no group commit shares its fsync) and then its outcome (`mark(..., "sent")`):
   µs per claimed row, per commit point and per outcome, medians.

Setup steps go to stderr, the table (or `--json`) to stdout. Every wait is bounded; the sink,
the send processes and the cluster are stopped at the end, Ctrl-C included. Exit status 1 when a
run misbehaves (a process fails or hangs, a copy is missing or duplicated).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from send import SECRET, SINK, SLUG, free_port, make_project, people  # benchmarks/send.py

from newsletter.deliver import postgres
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.deliver.tokens import SECRET_ENV

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from postgres_server import PASSWORD_ENV, Cluster, PostgresUnavailable  # noqa: E402  (tests/, no pytest needed)

#: The configurations, in the order of the first round: (database, processes).
CONFIGURATIONS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4))
#: The slowest rate a send may have before a run is declared hung, and the start-up allowance.
FLOOR_RATE = 50
STARTUP_SECONDS = 120
#: Rows the ledger measurement claims (at most N).
LEDGER_ROWS = 2000

log = Console(stderr=True, highlight=False, soft_wrap=True)


class Misbehaved(Exception):
    """A run went wrong: a process failed or hung, or the sink's count is off."""


@dataclass
class Run:
    """One run of one configuration."""

    database: str
    processes: int
    wall: float
    loop: float
    split: list[int]


@dataclass
class Throughput:
    """A configuration's runs and their medians."""

    database: str
    processes: int
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        """SQLite, 1 process; PostgreSQL, 4 processes..."""
        plural = "es" if self.processes > 1 else ""
        label = "SQLite" if self.database == "sqlite" else "PostgreSQL"
        return f"{label}, {self.processes} process{plural}"

    def rate(self, count: int) -> float:
        """Median messages per second over the wall time."""
        return statistics.median(count / run.wall for run in self.runs)

    def loop_rate(self, count: int) -> float:
        """Median messages per second over the longest send loop."""
        return statistics.median(count / run.loop for run in self.runs)


@dataclass
class LedgerCost:
    """µs per claimed row, per commit point and per outcome, one list entry per repeat."""

    database: str
    claim: list[float] = field(default_factory=list)
    commit_point: list[float] = field(default_factory=list)
    outcome: list[float] = field(default_factory=list)


class Sink:
    """The counting sink process: its port, and `tally()` of what it took since the last."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def tally(self) -> dict[str, int]:
        """Messages and distinct recipients since the last tally (the sink starts afresh)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("tally\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        if not ready:
            raise Misbehaved("the SMTP sink did not answer within 30 s")
        counts: dict[str, int] = json.loads(self.process.stdout.readline())
        return counts


@contextmanager
def sink_process(workdir: Path) -> Iterator[Sink]:
    """Run the counting SMTP sink as its own process; yield it; stop it afterwards."""
    port = free_port()
    errors = (workdir / "sink.err").open("w")
    process = subprocess.Popen(
        [sys.executable, str(SINK), str(port), "--tally"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        if not ready or process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the SMTP sink did not start: {(workdir / 'sink.err').read_text()}")
        yield Sink(process, port)
    finally:
        stop(process)
        errors.close()


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate a child (kill it if it lingers past 10 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def cli() -> list[str]:
    """The `newsletter` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "newsletter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]


def fill(location: Path | str, count: int) -> float:
    """Import `count` subscribers into the database at `location`; the seconds it took."""
    start = time.perf_counter()
    with SubscriberStore.open(location) as store:
        report = store.import_rows(people(count))
    if report.imported != count:
        raise RuntimeError(f"imported {report.imported} of {count}: {report.problems[:3]}")
    return time.perf_counter() - start


def send_together(
    project: Path, slug: str, processes: int, count: int, logs: Path
) -> tuple[float, float, list[int]]:
    """Start `processes` sends of issues/`slug` at once; the wall time from the first start to
    the last end, the longest send loop, and how many each sent. Misbehaved if one fails or
    they outlast the bound (all are killed then)."""
    shutil.copytree(project / "issues" / SLUG, project / "issues" / slug)
    command = [*cli(), "send", f"issues/{slug}", "--yes", "--json", "--skip-url-check"]
    bound = STARTUP_SECONDS + count / FLOOR_RATE
    outputs: list[tuple[TextIO, TextIO]] = []
    children: list[subprocess.Popen[str]] = []
    try:
        start = time.perf_counter()
        for number in range(processes):
            out = (logs / f"{slug}-{number}.out").open("w+")
            err = (logs / f"{slug}-{number}.err").open("w+")
            outputs.append((out, err))
            children.append(
                subprocess.Popen(command, cwd=project, stdout=out, stderr=err, text=True)
            )
        for child in children:
            try:
                child.wait(max(0.1, start + bound - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise Misbehaved(
                    f"{processes} process(es) on {slug} still running after {bound:.0f} s"
                ) from None
        wall = time.perf_counter() - start
        summaries = []
        for child, (out, err) in zip(children, outputs, strict=True):
            out.seek(0)
            err.seek(0)
            if child.returncode != 0:
                raise Misbehaved(
                    f"newsletter send exited {child.returncode}: {err.read().strip()[-1500:]}"
                )
            summaries.append(json.loads(out.read()))
    finally:
        for child in children:
            stop(child)
        for out, err in outputs:
            out.close()
            err.close()
    loop = max(float(summary["seconds"]) for summary in summaries)
    return wall, loop, [int(summary["sent"]) for summary in summaries]


def check_run(sink: Sink, location: Path | str, slug: str, count: int, split: list[int]) -> None:
    """Exactly `count` messages to `count` distinct recipients, and `count` rows `sent`."""
    tally = sink.tally()
    ledger = Ledger(connect(location), slug)
    try:
        counts = ledger.counts()
    finally:
        ledger.conn.close()
    problems = []
    if tally["messages"] != count or tally["recipients"] != count:
        problems.append(
            f"the sink took {tally['messages']:,} messages for {tally['recipients']:,} "
            f"recipients, expected {count:,} for {count:,}"
        )
    if sum(split) != count:
        problems.append(f"the processes say they sent {' + '.join(map(str, split))}")
    if counts["sent"] != count:
        problems.append(f"the ledger says {counts}")
    if problems:
        raise Misbehaved(f"{slug}: " + "; ".join(problems))


def measure_throughput(
    projects: dict[str, tuple[Path, Path | str]],
    sink: Sink,
    count: int,
    rounds: int,
    logs: Path,
) -> list[Throughput]:
    """Every configuration once per round, the order rotated by one each round."""
    results = {config: Throughput(*config) for config in CONFIGURATIONS}
    for round_ in range(rounds):
        shift = round_ % len(CONFIGURATIONS)
        for database, processes in CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]:
            result = results[database, processes]
            project, location = projects[database]
            slug = f"{SLUG}-{database}-{processes}-{round_}"
            sink.tally()  # start counting afresh
            wall, loop, split = send_together(project, slug, processes, count, logs)
            check_run(sink, location, slug, count, split)
            result.runs.append(Run(database, processes, wall, loop, split))
            log.print(
                f"round {round_ + 1}: {result.name}: {count / wall:,.0f} msg/s "
                f"({wall:.1f} s wall, send loop {loop:.1f} s; "
                f"{' + '.join(f'{n:,}' for n in split)})"
            )
    return list(results.values())


def measure_ledger(location: Path | str, slug: str, rows: int, batch: int) -> LedgerCost:
    """One repeat of the direct ledger measurement on the database at `location`."""
    cost = LedgerCost("sqlite" if isinstance(location, Path) else "postgresql")
    ledger = Ledger(connect(location), slug)
    try:
        ledger.enqueue()
        jobs = []
        start = time.perf_counter()
        while len(jobs) < rows:
            claimed = ledger.claim(min(batch, rows - len(jobs)))
            if not claimed:
                raise Misbehaved(f"claimed only {len(jobs)} of {rows} rows")
            jobs += claimed
        cost.claim.append((time.perf_counter() - start) / len(jobs) * 1e6)
        start = time.perf_counter()
        for job in jobs:
            ledger.mark_sending(job.subscriber_id, "<benchmark@example.org>", "sink")
        cost.commit_point.append((time.perf_counter() - start) / len(jobs) * 1e6)
        start = time.perf_counter()
        for job in jobs:
            ledger.mark(job.subscriber_id, "sent", "250 OK")
        cost.outcome.append((time.perf_counter() - start) / len(jobs) * 1e6)
    finally:
        ledger.conn.close()
    return cost


def measure_ledgers(
    locations: dict[str, Path | str], rows: int, batch: int, rounds: int
) -> list[LedgerCost]:
    """The ledger measurement on both databases, alternating, `rounds` times each."""
    costs = {database: LedgerCost(database) for database in locations}
    for round_ in range(rounds):
        for database, location in locations.items():
            one = measure_ledger(location, f"{SLUG}-ledger-{round_}", rows, batch)
            costs[database].claim += one.claim
            costs[database].commit_point += one.commit_point
            costs[database].outcome += one.outcome
    return list(costs.values())


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM as Ctrl-C, so that every `finally` (processes, sink, cluster) still runs."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure(
    count: int, connections: int, rounds: int, durable: bool
) -> tuple[list[Throughput], list[LedgerCost], dict[str, str]]:
    """Set up both projects, the sink and the cluster; run both measurements; tear down."""
    os.environ[SECRET_ENV] = SECRET
    cluster = Cluster(durable=durable)
    with (
        interruptible(),
        tempfile.TemporaryDirectory(prefix="newsletter-scale-bench-") as tmp,
        sink_process(Path(tmp)) as sink,
    ):
        log.print("starting a PostgreSQL cluster…")
        with cluster:
            database = cluster.create_database()
            os.environ[PASSWORD_ENV] = database.password
            try:
                sqlite = make_project(Path(tmp) / "sqlite", sink.port, connections)
                server = make_project(Path(tmp) / "postgresql", sink.port, connections)
                config = server / "newsletter.toml"
                config.write_text(f'database = "{database.url}"\n' + config.read_text())
                projects: dict[str, tuple[Path, Path | str]] = {
                    "sqlite": (sqlite, sqlite / "newsletter.db"),
                    "postgresql": (server, database.url),
                }
                for name, (_, location) in projects.items():
                    log.print(f"importing {count:,} subscribers into {name} (setup)…")
                    log.print(f"  took {fill(location, count):.1f} s")
                logs = Path(tmp) / "logs"
                logs.mkdir()
                throughput = measure_throughput(projects, sink, count, rounds, logs)
                rows, batch = min(count, LEDGER_ROWS), max(1, min(500, 16 * connections))
                log.print(f"ledger: claim {rows:,} rows {batch} at a time, then mark each…")
                locations = {name: location for name, (_, location) in projects.items()}
                ledgers = measure_ledgers(locations, rows, batch, rounds)
            finally:
                postgres.close_pools()
            settings = {
                name: cluster.settings[name]
                for name in ("fsync", "synchronous_commit", "full_page_writes")
                if name in cluster.settings
            }
    return throughput, ledgers, settings


def describe(durable: bool, settings: dict[str, str]) -> str:
    """One line on how durable each database is in this run."""
    if durable:
        server = "PostgreSQL defaults (fsync on, synchronous_commit on)"
    else:
        server = ", ".join(f"{name}={value}" for name, value in settings.items())
    return f"SQLite: WAL, commit point synchronous=FULL; PostgreSQL: {server}"


def report(
    throughput: list[Throughput], ledgers: list[LedgerCost], count: int
) -> list[dict[str, Any]]:
    """The figures as rows: configuration rates and ratios, then the ledger costs."""
    base = throughput[0].rate(count)
    rows: list[dict[str, Any]] = [
        {
            "figure": result.name,
            "msg_per_s": round(result.rate(count)),
            "send_loop_msg_per_s": round(result.loop_rate(count)),
            "vs_sqlite_1": round(result.rate(count) / base, 2),
            "runs_msg_per_s": [round(count / run.wall) for run in result.runs],
            "split": [run.split for run in result.runs],
        }
        for result in throughput
    ]
    for cost in ledgers:
        claim = statistics.median(cost.claim)
        point = statistics.median(cost.commit_point)
        outcome = statistics.median(cost.outcome)
        rows.append(
            {
                "figure": f"ledger on {cost.database}",
                "claim_us_per_row": round(claim, 1),
                "commit_point_us": round(point, 1),
                "outcome_us": round(outcome, 1),
                "total_us_per_message": round(claim + point + outcome, 1),
            }
        )
    return rows


def print_tables(rows: list[dict[str, Any]], title: str, caption: str) -> None:
    """Print the throughput and the ledger figures as two rich tables."""
    console = Console()
    console = console if console.is_terminal else Console(width=110)
    rates = Table(title=title, caption=caption)
    for column in ("configuration", "msg/s (wall)", "send loop", "vs SQLite 1", "runs"):
        rates.add_column(column, justify="left" if column in ("configuration", "runs") else "right")
    ledger = Table(title="Ledger cost per message, measured directly (µs, median)")
    for column in ("database", "claim / row", "commit point", "outcome", "total"):
        ledger.add_column(column, justify="left" if column == "database" else "right")
    for row in rows:
        if "msg_per_s" in row:
            rates.add_row(
                row["figure"],
                f"{row['msg_per_s']:,}",
                f"{row['send_loop_msg_per_s']:,}",
                f"{row['vs_sqlite_1']:.2f}",
                ", ".join(f"{rate:,}" for rate in row["runs_msg_per_s"]),
            )
        else:
            ledger.add_row(
                row["figure"].removeprefix("ledger on "),
                f"{row['claim_us_per_row']:,}",
                f"{row['commit_point_us']:,}",
                f"{row['outcome_us']:,}",
                f"{row['total_us_per_message']:,}",
            )
    console.print(rates)
    console.print(ledger)


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print tables or JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000, help="default 20000")
    parser.add_argument(
        "--connections", type=int, default=4, help="SMTP connections per process, default 4"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration (≥ 2)")
    parser.add_argument("--quick", action="store_true", help="2000 subscribers: a smoke run")
    parser.add_argument(
        "--pg-no-sync", action="store_true", help="PostgreSQL with fsync off, as in the tests"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    count = 2000 if args.quick else args.subscribers
    if count < 1 or args.rounds < 2 or not 1 <= args.connections <= 64:
        parser.error("--subscribers ≥ 1, --rounds ≥ 2 and --connections within 1..64")
    durable = not args.pg_no_sync
    try:
        throughput, ledgers, settings = measure(count, args.connections, args.rounds, durable)
    except Misbehaved as error:
        log.print(f"[bold red]misbehaved:[/] {error}")
        sys.exit(1)
    except PostgresUnavailable as error:
        log.print(f"no PostgreSQL here: {error}")
        sys.exit(1)
    rows = report(throughput, ledgers, count)
    durability = describe(durable, settings)
    cpus = os.cpu_count() or 0
    if args.json:
        result = {
            "subscribers": count,
            "connections_per_process": args.connections,
            "rounds": args.rounds,
            "cpus": cpus,
            "durability": durability,
            "figures": rows,
        }
        print(json.dumps(result, indent=2))
        return
    title = (
        f"Sending {count:,} copies into a loopback sink, {args.connections} connections per "
        f"process, {cpus} CPUs (median of {args.rounds} rounds)"
    )
    caption = f"{durability}. Wall time includes each process's start-up and build."
    print_tables(rows, title, caption)


if __name__ == "__main__":
    main()
