"""Benchmark `newsletter archive` on 200 issues: a full build, then a rebuild after one changed.

Run from anywhere as `python benchmarks/archive.py [--issues N] [--runs R] [--json]
[--baseline DIR]`. The goal, from the issue: rebuilding the archive after changing one issue of
200 takes under 1 s. `--baseline` names another checkout of the project (say `git worktree add
/tmp/base main`), measured in the same runs, interleaved, for a before/after on a noisy machine.

Setup, not measured: a temporary project gets a copy of `newsletter.toml`, `assets/` and N
copies of the example issue (its text, images and a date of their own, one day apart).
Measured, each as `python -m newsletter archive` in a subprocess (interpreter start included),
R times, medians of wall-clock and CPU time (user + system of the child):

- full: no site, no record and no previous generation kept beside the site, every issue built;
- one changed: after one more run with nothing changed (not measured: the site as any earlier
  run leaves it, with the generation it replaced kept beside it), one issue's issue.md edited
  (its subject), then the archive run again: that issue is built again, and the pages of the
  issues beside it, which link to it by its subject, are made again.

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


def timed_archive(project: Path, code: Path = ROOT) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and issues rebuilt of one `newsletter archive` run from the
    checkout `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "archive", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"newsletter archive failed: {done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, json.loads(done.stdout)["rebuilt"]


def measure(count: int, runs: int, codes: list[Path]) -> list[dict[str, object]]:
    """Full builds and one-changed rebuilds, `runs` of each, and their medians, for each
    checkout in `codes`, each with a project of its own; the runs of all are interleaved so that
    a busy moment of the machine falls on all of them alike."""
    samples: list[dict[str, list[tuple[float, float]]]] = [{"full": [], "one": []} for _ in codes]
    with tempfile.TemporaryDirectory() as tmp:
        projects = [Path(tmp) / str(number) for number in range(len(codes))]
        files = []
        for project in projects:
            project.mkdir()
            files.append(make_project(project, count))
        for run in range(runs):
            for code, project, issues, taken in zip(codes, projects, files, samples, strict=True):
                for gone in ("site", ".site.previous"):
                    shutil.rmtree(project / gone, ignore_errors=True)
                (project / ".site.cache.json").unlink(missing_ok=True)
                wall, cpu, rebuilt = timed_archive(project, code)
                assert rebuilt == count, rebuilt
                taken["full"].append((wall, cpu))
                assert timed_archive(project, code)[2] == 0  # as after any earlier run: not timed
                index = (run * 37) % count
                changed = issues[index]
                text = changed.read_text(encoding="utf-8")
                changed.write_text(text.replace("subject: ", f"subject: ({run}) ", 1), "utf-8")
                wall, cpu, rebuilt = timed_archive(project, code)
                neighbours = (index > 0) + (index < count - 1)
                assert rebuilt == 1 + neighbours, rebuilt
                taken["one"].append((wall, cpu))
    return [_figures(count, runs, code, taken) for code, taken in zip(codes, samples, strict=True)]


def _figures(
    count: int, runs: int, code: Path, taken: dict[str, list[tuple[float, float]]]
) -> dict[str, object]:
    """The medians of one checkout's samples, and whether they meet the goal."""
    figures: dict[str, object] = {"code": str(code), "issues": count, "runs": runs}
    for name, key in (("full", "full"), ("one_changed", "one")):
        figures[f"{name}_wall_s"] = round(statistics.median(w for w, _ in taken[key]), 3)
        figures[f"{name}_cpu_s"] = round(statistics.median(c for _, c in taken[key]), 3)
    figures["goal_ok"] = float(figures["one_changed_wall_s"]) < GOAL_SECONDS  # type: ignore[arg-type]
    return figures


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout, measured in the same runs (before)"
    )
    args = parser.parse_args(argv)
    codes = [args.baseline.resolve(), ROOT] if args.baseline else [ROOT]
    results = measure(args.issues, args.runs, codes)
    figures = results[-1]
    if args.json:
        print(json.dumps(results if args.baseline else figures, indent=2))
    else:
        print(f"archive of {args.issues} issues, medians of {args.runs} runs")
        for result in results:
            if args.baseline:
                print(f" {'before' if result is results[0] else 'after'}: {result['code']}")
            for name, label in (("full", "full build"), ("one_changed", "one issue changed")):
                wall, cpu = result[f"{name}_wall_s"], result[f"{name}_cpu_s"]
                print(f"  {label:18s} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        verdict = "ok" if figures["goal_ok"] else "MISSED"
        print(f"  goal: one issue changed under {GOAL_SECONDS:.0f} s: {verdict}")
    if not figures["goal_ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
