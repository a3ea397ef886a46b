"""How `serve` and `preview` run under uvicorn: proxy headers off, slow clients cut off.

uvicorn's own timer only covers the wait between two requests, and every byte received
restarts it, so a client sending a header a byte at a time, or connecting and saying nothing,
would hold a connection for ever. `DeadlineProtocol` gives each request a deadline for
arriving whole, counted from the connection (or the previous response) and not reset by data.

Proxy headers are left to the app (`create_app` believes them only from configured proxies).
The access log is off: request lines carry link tokens, which are as good as a password for
unsubscribing their reader or seeing their preferences.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Host names that always mean this machine: a page reached through any other name (a DNS
#: rebinding attack) is refused by TrustedHostMiddleware.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive in full."""

    request_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE:  # the whole request is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app: ASGIApp, host: str, port: int, request_timeout: float,
                   log_level: str = "info", **options: Any) -> uvicorn.Config:  # fmt: skip
    """The uvicorn settings both servers use (`options`: more of uvicorn's, such as TLS)."""
    protocol = type("Protocol", (DeadlineProtocol,), {"request_timeout": request_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol,
        proxy_headers=False,
        server_header=False,
        access_log=False,  # request lines hold link tokens, which act as credentials
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        limit_concurrency=500,
        **options,
    )
