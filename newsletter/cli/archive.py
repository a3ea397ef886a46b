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
    """Write the web archive: a page per sent (or ready, publish: true) issue, index and feed."""
    from newsletter.compose.issues import find_issues, project_folders
    from newsletter.config import load_config
    from newsletter.deliver.db import connect, exists
    from newsletter.deliver.history import sent_issues
    from newsletter.publish.archive import write_archive
    from newsletter.publish.incremental import build_incrementally, save_record
    from newsletter.publish.writer import check_output_folder

    settings = load_config(config)
    folders = find_issues(settings.root)
    database = settings.database_location
    sent = sent_issues(connect(database)) if exists(database) else set()
    target = out or settings.path(settings.web.site)
    protect = project_folders(settings.root)
    check_output_folder(target, protect)  # before any work: a refused folder changes nothing
    run = build_incrementally(settings, folders, sent, target)
    site = write_archive(run.archive, target, protect, run.unchanged)
    save_record(site, run)
    count, index, feed = len(run.archive.entries), site / "index.html", site / "feed.xml"
    if json:
        console.print_json(
            {"issues": count, "left_out": len(folders) - count, "rebuilt": run.rebuilt,
             "out": str(site), "index": str(index), "feed": str(feed)}
        )  # fmt: skip
        return
    console.out.print(
        f"Archived {count} {'issue' if count == 1 else 'issues'} into {site} "
        f"({run.rebuilt} built, {count - run.rebuilt} unchanged)"
    )
    if len(folders) > count:
        console.out.print(
            f"  left out: {len(folders) - count} (drafts, and issues neither sent nor marked "
            "'publish: true')"
        )
    console.out.print(f"  index: {index}  (publish the folder at base_url)")
    console.out.print(f"  feed:  {feed}")
