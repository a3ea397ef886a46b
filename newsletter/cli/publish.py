"""`newsletter publish`: copy the archive (pages, images, feed) to where base_url serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors
from newsletter.errors import ConfigError, InputError, Problem


@reports_errors
def publish(
    to: Annotated[
        Path | None, typer.Option("--to", help="Copy into this folder (default: [publish]).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Copy the site written by `newsletter archive` to its destination, readable by a server."""
    from newsletter.config import load_config
    from newsletter.publish.destination import copy_site, run_command

    settings = load_config(config)
    site = settings.path(settings.web.site)
    if not (site / "index.html").is_file():
        raise InputError(
            Problem(f"no site in {site}; run newsletter archive first", code="not-found")
        )
    target = to or (settings.path(settings.publish.folder) if settings.publish.folder else None)
    if target is not None:
        count = copy_site(site, target)
        console.out.print(f"Published {count} files from {site} into {target}")
        return
    if settings.publish.command:
        output = run_command(settings.publish.command, site, settings.publish.timeout)
        if output.strip():
            console.out.print(escape(output.rstrip()))
        console.out.print(f"Published {site} with: {escape(settings.publish.command)}")
        return
    raise ConfigError(
        Problem(
            "nowhere to publish to: set [publish] folder or command in newsletter.toml, "
            "or pass --to FOLDER",
            field="publish",
            code="missing-field",
        )
    )
