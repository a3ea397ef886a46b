"""Run an ASGI app under uvicorn on 127.0.0.1 in a thread, for tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from smtp_sink import free_port
from starlette.types import ASGIApp


@contextlib.contextmanager
def serving(app: ASGIApp, **options: Any) -> Iterator[str]:
    """Serve `app` on a free port (over https when `options` give `ssl_certfile`); yield its
    base URL; stop it afterwards."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if 'ssl_certfile' in options else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
