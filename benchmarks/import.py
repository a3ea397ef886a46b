"""Benchmark `newsletter subscribers import`: rows per second and peak memory.

Run from anywhere as `python benchmarks/import.py [--rows N ...] [--json]` (default: 100,000
and 1,000,000 rows; `--quick` for 100,000 only). The goals, from the issue: at least 30,000
rows a second, and a peak memory under 200 MB at 1,000,000 rows, in one transaction.

Setup, not measured: a temporary project gets a copy of `newsletter.toml`, and a CSV file of N
people is written: a header of email, first_name, last_name, tags and a `city` column (kept as
an attribute); one first name in ten is non-ASCII and one address in a hundred is
internationalised (an IDN domain or a non-ASCII local part, so email-validator's slow path is
measured too); every row has one or two tags; one row in a thousand is bad (an invalid
address), to exercise the per-row reports.

Measured: `python -m newsletter subscribers import FILE --json` as a subprocess, into an empty
database: wall-clock from start to exit and CPU time (user + system), interpreter start
included, and the rows per second by each. On Linux a child's ru_maxrss starts from its
parent's peak RSS, so the import runs under a tiny wrapper interpreter that reports
RUSAGE_CHILDREN of its only child: the import process's own peak and CPU time.

The rate goal is judged on CPU time: on a machine shared with other work, wall-clock time
mostly measures the wait for a core (both are printed). The exit status is 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATE = 30_000
GOAL_PEAK_MB = 200
GOAL_PEAK_AT = 1_000_000

FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon"]
LAST = ["Smith", "Okafor", "Nguyen", "Brown", "Kowalski", "O'Brien", "Patel", "Jones", "Weber"]
CITIES = ["Paris", "Zürich", "Lagos", "Hanoi", "Oslo", "Lima", "Pune"]
TAGS = ["news", "news|events", "vip", "events"]

#: Runs a command, then prints the peak RSS (KB) of that one child and its output, as JSON.
WRAPPER = """\
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr,
                  "kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}))
"""


def address(number: int) -> str:
    """The address of person `number`: mostly plain, some internationalised, a few invalid."""
    if number % 1000 == 999:
        return f"person{number}.example.com"  # no @: a bad row
    if number % 100 == 42:
        return f"pérson{number}@bücher.example" if number % 200 == 42 else f"p{number}@bücher.de"
    return f"Person.{number}@Example{number % 97}.com"


def write_csv(path: Path, rows: int) -> None:
    """A CSV file of `rows` people (see the module docstring)."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "first_name", "last_name", "tags", "city"])
        for number in range(rows):
            writer.writerow(
                [
                    address(number),
                    FIRST[number % 10],
                    LAST[number % 9],
                    TAGS[number % 4],
                    CITIES[number % 7],
                ]
            )


def run_import(project: Path, csv_path: Path) -> tuple[float, float, float, dict[str, object]]:
    """Wall and CPU seconds, peak MB and the JSON report of one import into `project`."""
    command = [sys.executable, "-m", "newsletter", "subscribers", "import", str(csv_path)]
    command += ["--json", "--config", str(project / "newsletter.toml")]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - start
    result = json.loads(done.stdout)
    if result["code"] != 0:
        raise SystemExit(f"the import failed ({result['code']}): {result['err']}")
    return seconds, result["cpu"], result["kb"] / 1024, json.loads(result["out"])


def measure(rows: int) -> dict[str, object]:
    """Import `rows` people into a fresh project; the figures and whether they meet the goals."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "newsletter.toml", project / "newsletter.toml")
        csv_path = project / "people.csv"
        start = time.perf_counter()
        write_csv(csv_path, rows)
        print(f"wrote {rows:,} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        seconds, cpu, peak_mb, report = run_import(project, csv_path)
    bad = rows // 1000
    if (report["imported"], report["skipped"]) != (rows - bad, bad):
        raise SystemExit(f"unexpected import report: {report}")
    rate = rows / cpu
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_s": round(rows / seconds),
        "rows_per_cpu_s": round(rate),
        "peak_mb": round(peak_mb, 1),
        "problems_reported": len(report["problems"]),  # type: ignore[arg-type]
        "rate_ok": rate >= GOAL_RATE,
        "peak_ok": rows < GOAL_PEAK_AT or peak_mb < GOAL_PEAK_MB,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure each size, print a table or JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="100,000 rows only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sizes = [100_000] if args.quick else args.rows
    results = [measure(rows) for rows in sizes]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{'rows':>10} {'wall s':>7} {'rows/s':>8} {'CPU s':>7} {'rows/CPU s':>10} "
            f"{'peak MB':>8}  goals"
        )
        for r in results:
            goals = f"rate {'ok' if r['rate_ok'] else 'MISSED'} (>= {GOAL_RATE:,}/CPU s)"
            if r["rows"] >= GOAL_PEAK_AT:
                goals += f", memory {'ok' if r['peak_ok'] else 'MISSED'} (< {GOAL_PEAK_MB} MB)"
            print(
                f"{r['rows']:>10,} {r['seconds']:>7.2f} {r['rows_per_s']:>8,} "
                f"{r['cpu_seconds']:>7.2f} {r['rows_per_cpu_s']:>10,} {r['peak_mb']:>8.1f}  {goals}"
            )
    if not all(r["rate_ok"] and r["peak_ok"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
