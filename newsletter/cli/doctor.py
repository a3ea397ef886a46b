"""`newsletter doctor`: one pass/warn/fail line per delivery check, with what to do."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors

#: Ask this DNS server (ADDRESS[:PORT]) instead of the system's, e.g. a local test server.
DNS_VARIABLE = "NEWSLETTER_DNS"
_STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}  # by Level


@reports_errors
def doctor(json: JsonOption = False, config: ConfigOption = None) -> None:
    """Check that mail will be delivered: SPF, DKIM, DMARC, bounce MX, relay TLS, the https
    links and the volume at Gmail/Outlook/Yahoo. Exit 1 if any check fails.

    DNS questions go to the system's resolver, or to $NEWSLETTER_DNS (ADDRESS[:PORT]).
    """
    from newsletter.config import load_config
    from newsletter.doctor import Level, run_doctor
    from newsletter.doctor.net import make_resolver

    settings = load_config(config)
    resolver = make_resolver(os.environ.get(DNS_VARIABLE) or None)
    results = run_doctor(settings, resolver=resolver)
    if json:
        console.print_json({"checks": [result.as_dict() for result in results]})
    else:
        for result in results:
            console.out.print(
                f"{_STYLE[result.level]}  {escape(result.name)}: {escape(result.finding)}"
            )
            if result.fix:
                console.out.print(f"      [dim]→[/] {escape(result.fix)}")
        counts = {level: sum(r.level == level for r in results) for level in Level}
        console.out.print(", ".join(f"{counts[level]} {level.value}" for level in Level))
    if any(result.level == Level.FAIL for result in results):
        raise typer.Exit(1)
