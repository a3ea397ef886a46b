"""`newsletter archive`: the static web archive of every issue, with its index and feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.deliver.db import connect
from newsletter.deliver.history import sent_issues
from newsletter.publish.archive import (
    build_archive,
    find_issues,
    project_folders,
    publishable,
    write_archive,
)


@reports_errors
def archive(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: the config's web.site: site/)."),
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Write the web archive: a page per sent (or ready, publish: true) issue, index and feed."""
    settings = load_config(config)
    issues = [load_issue(folder) for folder in find_issues(settings.root)]
    database = settings.path(settings.database)
    sent = sent_issues(connect(database)) if database.exists() else set()
    built = build_archive(settings, publishable(issues, sent))
    site = write_archive(
        built, out or settings.path(settings.web.site), project_folders(settings.root)
    )
    count, index, feed = len(built.entries), site / "index.html", site / "feed.xml"
    if json:
        console.print_json(
            {"issues": count, "left_out": len(issues) - count, "out": str(site),
             "index": str(index), "feed": str(feed)}
        )  # fmt: skip
        return
    console.out.print(f"Archived {count} {'issue' if count == 1 else 'issues'} into {site}")
    if len(issues) > count:
        console.out.print(
            f"  left out: {len(issues) - count} (drafts, and issues neither sent nor marked "
            "'publish: true')"
        )
    console.out.print(f"  index: {index}  (publish the folder at base_url)")
    console.out.print(f"  feed:  {feed}")
