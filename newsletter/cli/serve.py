"""`newsletter serve`: the sign-up, confirmation and unsubscribe pages, and the archive."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
import uvicorn

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors
from newsletter.cli.worker import start_worker
from newsletter.config import load_config
from newsletter.deliver.tokens import signer_for
from newsletter.web.app import create_app

#: How long `serve` waits for the worker to finish a send it started when stopping.
WORKER_STOP_SECONDS = 30.0


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    worker: Annotated[
        bool, typer.Option(help="Also send scheduled issues when due (newsletter worker).")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Serve sign-up (double opt-in), one-click unsubscribe and the archive over HTTP."""
    settings = load_config(config)
    app = create_app(settings, signer_for(settings))
    console.err.print(f"Serving {settings.name} on http://{host}:{port}/ (Ctrl-C to stop)")
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=True)
    )
    stop = threading.Event()
    thread = start_worker(settings, stop) if worker else None
    try:
        server.run()
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=WORKER_STOP_SECONDS)
    if not server.started:
        raise typer.Exit(1)
