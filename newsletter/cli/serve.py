"""`newsletter serve`: the sign-up, confirmation and unsubscribe pages, and the archive."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import ConfigOption, reports_errors


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    config: ConfigOption = None,
) -> None:
    """Serve sign-up (double opt-in), one-click unsubscribe and the archive over HTTP."""
    import uvicorn

    from newsletter.config import load_config
    from newsletter.deliver.tokens import signer_for
    from newsletter.web.app import create_app

    settings = load_config(config)
    app = create_app(settings, signer_for(settings))
    console.err.print(f"Serving {settings.name} on http://{host}:{port}/ (Ctrl-C to stop)")
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=True)
    )
    server.run()
    if not server.started:
        raise typer.Exit(1)
