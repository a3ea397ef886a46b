"""`newsletter check`: errors and warnings about an issue before it is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.cli.send import IssueArgument

if TYPE_CHECKING:  # the checks load when the command runs, for a fast start-up
    from newsletter.checks import CheckReport

_COLOURS = {"error": "red", "warning": "yellow"}  # by Level, a StrEnum


def _print(report: CheckReport) -> None:
    from newsletter.checks import plural

    for finding in report.findings:
        colour = _COLOURS[finding.level]
        console.out.print(
            f"[{colour}]{finding.level:<7}[/] {escape(finding.where)}  [bold]{finding.code}[/]  "
            f"{escape(finding.message)} — {escape(finding.fix)}"
        )
    spam = report.spam
    if spam and spam.score is not None:
        fired = ", ".join(f"{rule.name} {rule.points}" for rule in spam.rules if rule.points)
        console.out.print(
            f"SpamAssassin: {spam.score} points ({spam.threshold} required)"
            + (f"; {escape(fired)}" if fired else "")
        )
    elif spam and spam.note:
        console.out.print(f"Note: {escape(spam.note)}")
    counts = report.counts
    summary = f"{plural(counts['errors'], 'error')}, {plural(counts['warnings'], 'warning')}"
    if report.html_bytes is not None:
        summary += f" (HTML {report.html_bytes / 1024:.1f} KB)"
    console.out.print(summary)


@reports_errors
def check(
    issue_dir: IssueArgument,
    json: JsonOption = False,
    spam: Annotated[
        bool,
        typer.Option(
            "--spam", help="Also score a sample copy with SpamAssassin (local tests, no network)."
        ),
    ] = False,
    render: Annotated[
        bool,
        typer.Option(
            "--render", help="Also render it in headless Chromium and check it fits 375/650 px."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check an issue before sending: errors (exit 1) and warnings, each with what to do."""
    from newsletter.checks import load_config_for_check, run_check

    settings, config_findings = load_config_for_check(config, issue_dir)
    report = run_check(
        issue_dir, settings, spam=spam, render=render, config_findings=config_findings
    )
    if json:
        console.print_json({"issue": str(issue_dir), **report.to_json()})
    else:
        _print(report)
    if report.counts["errors"]:
        raise typer.Exit(1)
