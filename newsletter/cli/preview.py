"""`newsletter preview` and `newsletter screenshot`."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors

IssueArgument = Annotated[Path, typer.Argument(help="The issue folder (holding issue.md).")]


@reports_errors
def preview(
    issue_dir: IssueArgument,
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1 (a free one if it is taken).")
    ] = 8025,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    config: ConfigOption = None,
) -> None:
    """Serve a live preview on 127.0.0.1: desktop and phone side by side, text, findings."""
    import webbrowser

    import uvicorn

    from newsletter.config import load_config
    from newsletter.web.preview import PreviewSession, create_app, listening_socket
    from newsletter.web.server import uvicorn_config

    load_config(config, start=issue_dir)  # fail early, with the usual message, on a bad config
    sock = listening_socket(port)
    bound = int(sock.getsockname()[1])
    if bound != port:
        console.err.print(f"Port {port} is in use by another program; using port {bound} instead.")
    url = f"http://127.0.0.1:{bound}/"
    console.err.print(f"Previewing {issue_dir} at {url} (Ctrl-C to stop); it rebuilds on change.")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    app = create_app(PreviewSession(issue_dir, config))
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", bound, 30.0, log_level="warning"))
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(1)


@reports_errors
def screenshot(
    issue_dir: IssueArgument,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the PNGs (default screenshots/).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """PNG screenshots of the email at 375 px and 650 px wide, in headless Chromium."""
    from newsletter.browser import screenshots
    from newsletter.compose.build import build_issue, local_preview
    from newsletter.compose.issues import load_issue
    from newsletter.config import load_config
    from newsletter.publish.writer import write_build

    settings = load_config(config, start=issue_dir)
    issue = load_issue(issue_dir)
    built = build_issue(issue, settings)
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_build(built, Path(scratch) / issue.slug, local_preview(built))
        paths = screenshots(
            (folder / "preview.html").as_uri(), out or settings.root / "screenshots", issue.slug
        )
    for path in paths:
        console.out.print(str(path))
