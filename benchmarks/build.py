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

and, in fewer runs, the whole `newsletter build` command as a subprocess, interpreter start,
imports and file writing included. Every stage runs once as a warm-up before timing (template
compilation, imports and caches are thus excluded), then each timed run goes through all the
in-process stages in turn, so drifts in machine load touch every stage alike. The share column
is each stage's median against the median of the in-process pipeline total.
"""

from __future__ import annotations

import argparse
import json
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

from newsletter.compose.build import build_issue, prepare, render_mjml, render_text
from newsletter.compose.compiler import compile_mjml
from newsletter.compose.inline import inline_css
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import make_environment
from newsletter.config import load_config

ROOT = Path(__file__).resolve().parent.parent
ISSUE = ROOT / "issues" / "2026-11-24-france-welcomes-chechen-refugees"
CONFIG = ROOT / "newsletter.toml"
TOTAL = "pipeline total (in-process)"
CLI = "newsletter build (CLI, process start included)"


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


def measure(runs: int, cli_runs: int) -> tuple[list[Row], dict[str, float]]:
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

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "newsletter", "build", str(ISSUE), "--out"]
        command.append(str(Path(tmp) / "out"))

        def cli() -> None:
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)

        cli()
        times[CLI] = [timed(cli) for _ in range(cli_runs)]

    total = statistics.median(times[TOTAL])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        share = round(median / total * 100, 1) if name != CLI else None
        rows.append(Row(name, len(samples), round(median, 3), round(min(samples), 3), share))
    sizes = {
        "html_kb": round(built.html_bytes / 1024, 1),
        "text_kb": round(len(built.text.encode("utf-8")) / 1024, 1),
    }
    return rows, sizes


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
        last = row.stage in (TOTAL, CLI)
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
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rows, sizes = measure(args.runs, max(3, args.runs // 3))
    if args.json:
        print(
            json.dumps({"issue": ISSUE.name, "stages": [asdict(r) for r in rows]} | sizes, indent=2)
        )
    else:
        print_table(rows, sizes)


if __name__ == "__main__":
    main()
