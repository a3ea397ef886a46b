"""The `newsletter` command: parses options, calls the library, prints. Nothing else.

Start-up stays fast because the command modules import only Typer and rich at the top: each
command imports the library modules it uses inside its function, so `newsletter --version`
or `--help` never loads the build pipeline, the web server or the browser automation
(tests/test_startup.py keeps it so).

Every command is wrapped in `common.reports_errors`, the one place where a NewsletterError
becomes `Error: ...` on stderr and an exit code (2 for bad input, 1 for a failure while
working); `main` turns anything unexpected into one line and exit 1, never a traceback.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.main import get_command_name

from newsletter import __version__
from newsletter.cli import archive as cli_archive
from newsletter.cli import check as cli_check
from newsletter.cli import console
from newsletter.cli import doctor as cli_doctor
from newsletter.cli import embed as cli_embed
from newsletter.cli import init as cli_init
from newsletter.cli import preview as cli_preview
from newsletter.cli import publish as cli_publish
from newsletter.cli import report as cli_report
from newsletter.cli import send as cli_send
from newsletter.cli import serve as cli_serve
from newsletter.cli import worker as cli_worker
from newsletter.cli.common import ConfigOption, JsonOption, reports_errors, without_collector
from newsletter.cli.db import db_app
from newsletter.cli.inbound import inbound_app
from newsletter.cli.later import schedule_app
from newsletter.cli.subscribers import subscribers_app
from newsletter.lazymodules import import_on_first_use

app = typer.Typer(
    help="Build newsletter issues into responsive HTML email and send them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(cli_init.init)


@app.command()
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


@app.command()
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
    from newsletter.compose.issues import load_issue
    from newsletter.config import load_config
    from newsletter.publish.archive import project_folders
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
            console.warning(escape(message))
        size = f"{built.html_bytes / 1024:.1f} KB"
        console.out.print(f"Built [bold]{escape(built.subject)}[/] ({size})")
        console.out.print(f"  email (HTML):  {files['index.html']}")
        console.out.print(f"  plain text:    {files['index.txt']}")
        console.out.print(f"  MJML source:   {files['index.mjml']}")
        console.out.print(f"  local preview: {files['preview.html']}  (open this in a browser)")
        for note in built.prepared_images:
            console.out.print(f"  image for email: {escape(note)}")
    if strict and built.warnings:
        raise typer.Exit(1)


app.add_typer(subscribers_app, name="subscribers")
app.add_typer(inbound_app, name="inbound")
app.add_typer(schedule_app, name="schedule")
app.add_typer(db_app, name="db")
app.command()(cli_worker.worker)
app.command()(cli_publish.publish)
app.command()(cli_send.send)
app.command()(cli_send.status)
app.command()(cli_send.unsubscribe)
app.command()(cli_check.check)
app.command()(cli_serve.serve)
app.command()(cli_archive.archive)
app.command()(cli_embed.embed)
app.command()(cli_preview.preview)
app.command()(cli_preview.screenshot)
app.command()(cli_report.report)
app.command()(cli_doctor.doctor)


def _version(value: bool) -> None:
    if value:
        console.out.print(f"newsletter {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind any error.")
    ] = False,
) -> None:
    """Build newsletter issues into responsive HTML email and send them."""
    console.debug = debug or console.debug


def for_command(args: list[str]) -> typer.Typer:
    """The app holding only the command or command group that `args` name, else the whole app.

    Before running a command, Typer turns every registered one into a Click command, reading
    each function's signature and type hints (~20 ms for all of them); once the name is known,
    the others are never needed. The app's own options (--debug, --version) take no value, so
    the name is the first argument not starting with '-'. Without a known name, the whole app
    answers (its help, or "No such command" with a suggestion).
    """
    name = next((arg for arg in args if not arg.startswith("-")), None)
    commands = [
        info
        for info in app.registered_commands
        if info.callback and (info.name or get_command_name(info.callback.__name__)) == name
    ]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def main() -> None:
    """Entry point of the `newsletter` script; unexpected errors become one line, exit 1."""
    # pydantic looks for plugins through every installed package's metadata (~40 ms); the
    # command has none to offer, so it is told not to look unless the user says otherwise,
    # and the module it would look with is only imported if something uses it (~10 ms).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    import_on_first_use("importlib.metadata", functions=("entry_points",))
    try:
        for_command(sys.argv[1:])()
    except Exception as exc:  # a bug of ours: say so in one line, never a traceback
        console.traceback()
        console.error(f"unexpected {type(exc).__name__}: {escape(str(exc))}")
        console.err.print("This is a bug in newsletter; please report it with the command you ran.")
        raise SystemExit(1) from None
