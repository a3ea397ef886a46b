"""`newsletter serve`: the sign-up, confirmation and unsubscribe pages, and the archive."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors
from newsletter.cli.worker import start_worker

#: How long `serve` waits for the worker to finish a send it started when stopping.
WORKER_STOP_SECONDS = 30.0


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    accept_new_key: Annotated[
        bool, typer.Option(help="The signing key was replaced on purpose: record the new one.")
    ] = False,
    worker: Annotated[
        bool, typer.Option(help="Also send scheduled issues when due (newsletter worker).")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Serve sign-up (double opt-in), one-click unsubscribe, preferences and the archive; with
    [inbound] listen = true, also take bounces over LMTP (newsletter inbound listen)."""
    import uvicorn

    from newsletter.cli.inbound import start_listener
    from newsletter.config import load_config
    from newsletter.deliver.db import connect
    from newsletter.deliver.keycheck import check_signing_key
    from newsletter.deliver.tokens import key_source, signer_for
    from newsletter.web.app import create_app
    from newsletter.web.server import uvicorn_config

    settings = load_config(config)
    signer = signer_for(settings)
    conn = connect(settings.database_location)
    try:
        check_signing_key(conn, signer, key_source(settings), accept=accept_new_key)
    finally:
        conn.close()
    app = create_app(settings, signer)
    where = f"http://{host}:{port}{settings.base_path}/"
    console.err.print(f"Serving {settings.name} on {where} (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn_config(app, host, port, settings.web.request_timeout))
    listener = start_listener(settings) if settings.inbound.listen else None
    stop = threading.Event()
    thread = start_worker(settings, stop) if worker else None
    try:
        server.run()
    finally:
        if listener is not None:
            listener.stop()
        stop.set()
        if thread is not None:
            thread.join(timeout=WORKER_STOP_SECONDS)
    if not server.started:
        raise typer.Exit(1)
