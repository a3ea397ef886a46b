"""Benchmark `newsletter archive` on 200 issues: a full build, then a rebuild after one changed.

Run from anywhere as `python benchmarks/archive.py [--issues N] [--runs R] [--json]`. The goal,
from the issue: rebuilding the archive after changing one issue of 200 takes under 1 s.

Setup, not measured: a temporary project gets a copy of `newsletter.toml`, `assets/` and N
copies of the example issue (its text, images and a date of their own, one day apart).
Measured, each as `python -m newsletter archive` in a subprocess (interpreter start included),
R times, medians of wall-clock and CPU time (user + system of the child):

- full: no site and no record, every issue built;
- one changed: one issue's issue.md edited (its subject), then the archive run again: that
  issue is built again, and the pages of the issues beside it, which link to it by its
  subject, are made again.

The exit status is 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "issues" / "2026-11-24-france-welcomes-chechen-refugees"
GOAL_SECONDS = 1.0


def make_project(folder: Path, count: int) -> list[Path]:
    """A project holding `count` copies of the example issue; their issue.md files."""
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    shutil.copytree(ROOT / "assets", folder / "assets")
    source = (EXAMPLE / "issue.md").read_text(encoding="utf-8")
    day = dt.date(2020, 1, 1)
    files = []
    for number in range(count):
        date = day + dt.timedelta(days=number)
        issue = folder / "issues" / f"{date.isoformat()}-issue-{number}"
        shutil.copytree(EXAMPLE, issue)
        text = source.replace("date: 2026-11-24", f"date: {date.isoformat()}", 1)
        (issue / "issue.md").write_text(text, encoding="utf-8")
        files.append(issue / "issue.md")
    return files


def timed_archive(project: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and issues rebuilt of one `newsletter archive`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "archive", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"newsletter archive failed: {done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, json.loads(done.stdout)["rebuilt"]


def measure(count: int, runs: int) -> dict[str, object]:
    """Full builds and one-changed rebuilds, `runs` of each, interleaved; their medians."""
    full: list[tuple[float, float]] = []
    one: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        files = make_project(project, count)
        for run in range(runs):
            shutil.rmtree(project / "site", ignore_errors=True)
            (project / ".site.cache.json").unlink(missing_ok=True)
            wall, cpu, rebuilt = timed_archive(project)
            assert rebuilt == count, rebuilt
            full.append((wall, cpu))
            index = (run * 37) % count
            changed = files[index]
            text = changed.read_text(encoding="utf-8")
            changed.write_text(text.replace("subject: ", f"subject: ({run}) ", 1), "utf-8")
            wall, cpu, rebuilt = timed_archive(project)
            neighbours = (index > 0) + (index < count - 1)
            assert rebuilt == 1 + neighbours, rebuilt
            one.append((wall, cpu))
    figures: dict[str, object] = {"issues": count, "runs": runs}
    for name, samples in (("full", full), ("one_changed", one)):
        figures[f"{name}_wall_s"] = round(statistics.median(w for w, _ in samples), 3)
        figures[f"{name}_cpu_s"] = round(statistics.median(c for _, c in samples), 3)
    figures["goal_ok"] = float(figures["one_changed_wall_s"]) < GOAL_SECONDS  # type: ignore[arg-type]
    return figures


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.issues, args.runs)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"archive of {args.issues} issues, medians of {args.runs} runs")
        for name, label in (("full", "full build"), ("one_changed", "one issue changed")):
            wall, cpu = figures[f"{name}_wall_s"], figures[f"{name}_cpu_s"]
            print(f"  {label:18s} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        verdict = "ok" if figures["goal_ok"] else "MISSED"
        print(f"  goal: one issue changed under {GOAL_SECONDS:.0f} s: {verdict}")
    if not figures["goal_ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
