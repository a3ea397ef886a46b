"""Benchmark the build pipeline on the example issue, stage by stage.

Run from anywhere as `python benchmarks/build.py [--runs N] [--json]`. It builds
`issues/2026-11-24-france-welcomes-chechen-refugees` with `newsletter.toml` and reports the
median and minimum wall-clock time (`time.perf_counter`) of each stage, in-process:

- load: `load_config` + `load_issue` + `prepare` (YAML, validation, Markdown parse, images)
- jinja2: `render_mjml`, the Jinja2 template rendered into MJML
- mjml: `compile_mjml`, MJML compiled to HTML by mjml-python
- premailer: `inline_css`, the CSS inlined into the HTML
- text: `render_text`, the plain-text twin
- pipeline total (in-process): `build_issue` with the environment and prepared issue given,
  i.e. everything but load (the four stages above plus merge-tag restoring and size checks)

Every stage runs once as a warm-up before timing (template compilation, imports and caches
are thus excluded), then each timed run goes through all the in-process stages in turn, so
drifts in machine load touch every stage alike. The share column is each stage's median against
the median of the in-process pipeline total.

Then the commands, as subprocesses, interleaved (one of each per round, `--command-runs`
rounds), medians of CPU time (user + system, from the children's rusage) and wall-clock time:

- `newsletter build` of the example, interpreter start, imports and file writing included, three
  ways: "edited", with the issue's entry of the HTML cache (`build/.html-cache/`) removed before
  each run, as after an edit of the issue: the MJML is compiled and inlined, and cssutils is
  spared the CSS texts that earlier builds parsed (the parse memo beside the entries, see
  `newsletter.compose.emailhtml`); "cold", with the whole HTML cache folder removed, memo
  included; and "cached", finding the HTML of the same MJML there. All three find the prepared
  images and Jinja2's compiled templates in their caches, written by the warm-up run;
- the MJML command-line tool (Node, `mjml@5`) compiling the same `index.mjml` to HTML; the goal
  is `newsletter build` under 0.5 times its CPU time, judged on the edited build (the one an
  editor runs again and again), with the cold build's ratio printed beside it. It is looked for in
  `benchmarks/.node/node_modules/.bin/mjml` (install it there with
  `npm install --prefix benchmarks/.node mjml@5`) or given with `--mjml PATH`;
- `newsletter --version`, goal under 150 ms wall-clock.

CPU time is the fair figure on a busy machine: wall-clock time then mostly measures the wait for
a core. The package's bytecode is compiled first (`compileall`), as `pip install` does, so that
an environment with PYTHONDONTWRITEBYTECODE does not compile its modules in every run. The
`--no-commands` option skips this part.
"""

from __future__ import annotations

import argparse
import compileall
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import newsletter
from newsletter.compose.build import HTML_CACHE, build_issue, prepare, render_mjml, render_text
from newsletter.compose.compiler import compile_mjml
from newsletter.compose.inline import inline_css
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import make_environment
from newsletter.config import load_config

ROOT = Path(__file__).resolve().parent.parent
ISSUE = ROOT / "issues" / "2026-11-24-france-welcomes-chechen-refugees"
CONFIG = ROOT / "newsletter.toml"
TOTAL = "pipeline total (in-process)"
MJML_CLI = ROOT / "benchmarks" / ".node" / "node_modules" / ".bin" / "mjml"
BUILD_GOAL = 0.5
VERSION_GOAL_MS = 150.0


@dataclass(frozen=True)
class Row:
    """One measured stage: its timings in milliseconds and its share of the in-process total."""

    stage: str
    runs: int
    median_ms: float
    min_ms: float
    share_pct: float | None


def timed(call: Callable[[], Any]) -> float:
    """Milliseconds one call of `call` takes."""
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(runs: int) -> tuple[list[Row], dict[str, float]]:
    """Time every stage; return the rows and the built HTML and text sizes in KB."""
    config = load_config(CONFIG)
    issue = load_issue(ISSUE)
    prepared = prepare(issue, config)
    env = make_environment(config.root)

    def load() -> None:
        prepare(load_issue(ISSUE), load_config(CONFIG))

    # Warm-up: one run of everything; its outputs are the inputs of the later stages.
    load()
    mjml_source = render_mjml(issue, config, prepared, env)
    compiled = compile_mjml(mjml_source)
    inline_css(compiled)
    render_text(issue, config, prepared, env)
    built = build_issue(issue, config, env, prepared)

    stages: dict[str, Callable[[], Any]] = {
        "load": load,
        "jinja2": lambda: render_mjml(issue, config, prepared, env),
        "mjml": lambda: compile_mjml(mjml_source),
        "premailer": lambda: inline_css(compiled),
        "text": lambda: render_text(issue, config, prepared, env),
        TOTAL: lambda: build_issue(issue, config, env, prepared),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(runs):
        for name, call in stages.items():
            times[name].append(timed(call))

    total = statistics.median(times[TOTAL])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        share = round(median / total * 100, 1)
        rows.append(Row(name, len(samples), round(median, 3), round(min(samples), 3), share))
    sizes = {
        "html_kb": round(built.html_bytes / 1024, 1),
        "text_kb": round(len(built.text.encode("utf-8")) / 1024, 1),
    }
    return rows, sizes


@dataclass(frozen=True)
class Command:
    """One command measured as a subprocess: medians of CPU and wall-clock milliseconds."""

    command: str
    runs: int
    cpu_ms: float
    wall_ms: float


def newsletter_script() -> list[str]:
    """How to start the `newsletter` command: its script beside this Python, else `-m`."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "newsletter"]


def run_timed(command: list[str]) -> tuple[float, float]:
    """CPU and wall-clock milliseconds of one run of `command` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return cpu, wall


EDITED, COLD, CACHED = (f"newsletter build ({how})" for how in ("edited", "cold", "cached"))


def measure_commands(runs: int, mjml: Path | None) -> list[Command]:
    """`newsletter build` (edited, cold, cached), the MJML tool on the same MJML and
    `--version`, interleaved."""
    compileall.compile_dir(Path(newsletter.__file__).parent, quiet=1)
    script = newsletter_script()
    cache = ROOT / HTML_CACHE
    cache_entry = cache / f"{ISSUE.name}.html"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        build = [*script, "build", str(ISSUE), "--out", str(out)]
        commands = {EDITED: build, COLD: build, CACHED: build}
        commands["newsletter --version"] = [*script, "--version"]
        run_timed(build)  # warm-up; writes the index.mjml to compile
        if mjml is not None:
            html = str(Path(tmp) / "mjml.html")
            commands["mjml CLI (Node)"] = [str(mjml), str(out / "index.mjml"), "-o", html]
            run_timed(commands["mjml CLI (Node)"])
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                if name == EDITED:
                    cache_entry.unlink(missing_ok=True)
                elif name == COLD:
                    shutil.rmtree(cache, ignore_errors=True)
                samples[name].append(run_timed(command))
    return [
        Command(
            name,
            runs,
            round(statistics.median(cpu for cpu, _ in timings), 1),
            round(statistics.median(wall for _, wall in timings), 1),
        )
        for name, timings in samples.items()
    ]


def verdicts(commands: list[Command]) -> dict[str, Any]:
    """The ratios of `newsletter build` (edited, cold, cached) to the MJML tool in CPU time, and
    the goals (the build's judged on the edited build)."""
    by_name = {command.command: command for command in commands}
    mjml = by_name.get("mjml CLI (Node)")
    edited, cold, cached = (
        round(by_name[name].cpu_ms / mjml.cpu_ms, 2) if mjml else None
        for name in (EDITED, COLD, CACHED)
    )
    return {
        "build_to_mjml_cpu_ratio": edited,
        "cold_build_to_mjml_cpu_ratio": cold,
        "cached_build_to_mjml_cpu_ratio": cached,
        "build_goal_met": None if edited is None else edited < BUILD_GOAL,
        "version_goal_met": by_name["newsletter --version"].wall_ms < VERSION_GOAL_MS,
    }


def print_commands(commands: list[Command], result: dict[str, Any]) -> None:
    """Print the commands' figures and the verdicts."""
    console = Console()
    table = Table(title="Commands (subprocesses, interleaved, medians)")
    table.add_column("command")
    table.add_column("runs", justify="right")
    table.add_column("CPU ms", justify="right")
    table.add_column("wall ms", justify="right")
    for command in commands:
        table.add_row(
            command.command, str(command.runs), f"{command.cpu_ms:.0f}", f"{command.wall_ms:.0f}"
        )
    console.print(table)
    ratio = result["build_to_mjml_cpu_ratio"]
    if ratio is None:
        console.print(
            "MJML CLI not found: npm install --prefix benchmarks/.node mjml@5 (or --mjml PATH)"
        )
    else:
        met = "met" if result["build_goal_met"] else "MISSED"
        cold = result["cold_build_to_mjml_cpu_ratio"]
        cached = result["cached_build_to_mjml_cpu_ratio"]
        console.print(
            f"newsletter build (edited) / mjml CLI, CPU time: {ratio:.2f}"
            f" (goal < {BUILD_GOAL}: {met})"
        )
        console.print(f"  cold (no HTML cache, no parse memo): {cold:.2f}")
        console.print(f"  with the HTML cache of an earlier build of the same MJML: {cached:.2f}")
    met = "met" if result["version_goal_met"] else "MISSED"
    console.print(f"newsletter --version wall-clock goal < {VERSION_GOAL_MS:.0f} ms: {met}")


def print_table(rows: list[Row], sizes: dict[str, float]) -> None:
    """Print the rows as a rich table, the built sizes under it."""
    console = Console()
    table = Table(
        title=f"Build of {ISSUE.name}",
        caption="share: of the in-process pipeline total (load is not part of it)",
    )
    table.add_column("stage")
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("median ms", justify="right", no_wrap=True)
    table.add_column("min ms", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    for row in rows:
        share = "" if row.share_pct is None else f"{row.share_pct:.1f} %"
        last = row.stage == TOTAL
        table.add_row(
            f"[bold]{row.stage}[/]" if last else row.stage,
            str(row.runs),
            f"{row.median_ms:.2f}",
            f"{row.min_ms:.2f}",
            share,
            end_section=row.stage == "text",
        )
    console.print(table)
    console.print(f"HTML: {sizes['html_kb']:.1f} KB   text: {sizes['text_kb']:.1f} KB")


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print a table or JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed in-process runs (default 15)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--command-runs", type=int, default=11, help="rounds of the commands (default 11)"
    )
    parser.add_argument("--mjml", type=Path, help="the MJML command-line tool to compare with")
    parser.add_argument("--no-commands", action="store_true", help="in-process stages only")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.command_runs < 1:
        parser.error("--runs and --command-runs must be at least 1")
    rows, sizes = measure(args.runs)
    commands: list[Command] = []
    result: dict[str, Any] = {}
    if not args.no_commands:
        mjml = args.mjml or (MJML_CLI if MJML_CLI.is_file() else shutil.which("mjml"))
        commands = measure_commands(args.command_runs, Path(mjml) if mjml else None)
        result = verdicts(commands)
    if args.json:
        figures = {"issue": ISSUE.name, "stages": [asdict(r) for r in rows]} | sizes
        figures |= {"commands": [asdict(c) for c in commands]} | result
        print(json.dumps(figures, indent=2))
    else:
        print_table(rows, sizes)
        if commands:
            print_commands(commands, result)


if __name__ == "__main__":
    main()
