"""`newsletter archive`: the static web archive of every issue, with its index and feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors


@reports_errors
def archive(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: the config's web.site: site/)."),
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Write the web archive: a page per issue, an index newest first and an Atom feed."""
    from newsletter.compose.issues import load_issue
    from newsletter.config import load_config
    from newsletter.publish.archive import build_archive, find_issues, write_archive

    settings = load_config(config)
    issues = [load_issue(folder) for folder in find_issues(settings.root)]
    built = build_archive(settings, issues)
    site = write_archive(built, out or settings.path(settings.web.site))
    count, index, feed = len(built.entries), site / "index.html", site / "feed.xml"
    if json:
        console.print_json(
            {"issues": count, "out": str(site), "index": str(index), "feed": str(feed)}
        )
        return
    console.out.print(f"Archived {count} {'issue' if count == 1 else 'issues'} into {site}")
    console.out.print(f"  index: {index}  (publish the folder at base_url)")
    console.out.print(f"  feed:  {feed}")
