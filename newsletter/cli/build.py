"""`newsletter new` and `newsletter build`: start an issue, build it into its files.

`build` is the command an editor runs again and again while writing, so this module imports
nothing at its top but Typer and the shared pieces, and prints its few fixed lines without
rich (about 20 ms a run); the pipeline is imported inside the function.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors, without_collector


@reports_errors
def new(
    title: Annotated[str, typer.Argument(help="The issue's headline, used for its folder name.")],
    date: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Issue date, YYYY-MM-DD (default: today)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create issues/<date>-<slug>/issue.md, a commented template of every field."""
    from newsletter.config import load_config
    from newsletter.publish.scaffold import new_issue

    settings = load_config(config)
    day = date.date() if date else dt.date.today()
    folder = new_issue(title, settings.root / "issues", settings.root, day)
    console.out.print(f"Created {folder / 'issue.md'}")
    console.out.print(
        f"Next: write it, set 'status: ready' when it is done, then: newsletter check {folder}"
    )


@reports_errors
@without_collector
def build(
    issue_dir: Annotated[Path, typer.Argument(help="The issue folder (holding issue.md).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: build/<slug>).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 if there are warnings.")] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Build an issue into index.html, index.txt, index.mjml and images/."""
    from newsletter.compose.build import HTML_CACHE, build_issue, local_preview
    from newsletter.compose.issues import load_issue, project_folders
    from newsletter.config import load_config
    from newsletter.publish.writer import check_output_folder, write_build

    settings = load_config(config, start=issue_dir)
    issue = load_issue(issue_dir)
    out = out or settings.root / "build" / issue.slug
    protect = [*project_folders(settings.root), issue_dir]
    check_output_folder(out, protect)  # before any work, and before the HTML cache is written
    built = build_issue(issue, settings, html_cache=settings.root / HTML_CACHE)
    target = write_build(built, out, local_preview(built), protect)
    files = {name: str(target / name) for name in ("index.html", "index.txt", "index.mjml")}
    files["preview.html"] = str(target / "preview.html")
    if json:
        console.print_json(
            {
                "slug": built.slug,
                "subject": built.subject,
                "out": str(target),
                "files": files,
                "html_bytes": built.html_bytes,
                "text_bytes": len(built.text.encode("utf-8")),
                "images": len(built.assets),
                "images_prepared": list(built.prepared_images),
                "warnings": list(built.warnings),
            }
        )
    else:
        for message in built.warnings:
            console.warning(console.escape(message))
        size = f"{built.html_bytes / 1024:.1f} KB"
        console.plain(f"Built {built.subject} ({size})")
        console.plain(f"  email (HTML):  {files['index.html']}")
        console.plain(f"  plain text:    {files['index.txt']}")
        console.plain(f"  MJML source:   {files['index.mjml']}")
        console.plain(f"  local preview: {files['preview.html']}  (open this in a browser)")
        for note in built.prepared_images:
            console.plain(f"  image for email: {note}")
    if strict and built.warnings:
        raise typer.Exit(1)
