"""Run an ASGI app under uvicorn on a loopback address in a thread, for tests, with the same
uvicorn settings as `newsletter serve`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from smtp_sink import free_port
from starlette.types import ASGIApp

from newsletter.web.server import uvicorn_config


@contextlib.contextmanager
def serving(
    app: ASGIApp,
    host: str = "127.0.0.1",
    request_timeout: float = 10.0,
    port: int | None = None,
    **options: Any,
) -> Iterator[str]:
    """Serve `app` on `port` (default: a free one; over https when `options` give
    `ssl_certfile`); yield its base URL; stop it afterwards."""
    port = port or free_port()
    config = uvicorn_config(app, host, port, request_timeout, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if 'ssl_certfile' in options else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
