"""`newsletter embed`: print the sign-up form to paste into the newsroom's own site."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors


@reports_errors
def embed(
    script: Annotated[
        bool, typer.Option(help="Add the small script that answers in place (optional).")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Print an HTML sign-up form (double opt-in through `serve`) for another website."""
    from newsletter.config import load_config
    from newsletter.web.embed import embed_snippet

    settings = load_config(config)
    sys.stdout.write(embed_snippet(settings, script))
    if not settings.web.embed_origins:
        console.warning(
            escape(
                "no site may post this form yet: list the sites that show it in "
                '[web] embed_origins, e.g. embed_origins = ["https://www.example.org"]'
            )
        )
