"""An LMTP (or SMTP) listener on loopback for the bounce domain: a local Postfix hands it the
mail with `transport_maps` (`bounce.example.org lmtp:inet:127.0.0.1:8025`).

Each message is given to `handle(raw)`, which must store it before the listener answers 250:
a message is never acknowledged and then lost. A message `handle` cannot take gets a 451,
so the MTA keeps it and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)
#: Larger messages are refused (552): bounces are small; this is not a mailbox.
MAX_BYTES = 10 * 1024 * 1024


class _Handler:
    def __init__(self, handle: Callable[[bytes], None]) -> None:
        self.handle = handle

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            self.handle(raw)
        except Exception as exc:  # keep the message at the MTA rather than lose it
            log.warning("inbound message not stored (%s); the sender will retry", exc)
            return "451 4.3.0 cannot store the message now; try again later"
        return "250 2.0.0 stored"


class _Controller(Controller):
    def __init__(self, handler: _Handler, host: str, port: int, lmtp: bool) -> None:
        super().__init__(handler, hostname=host, port=port, data_size_limit=MAX_BYTES,
                         ready_timeout=10)  # fmt: skip
        self.lmtp = lmtp

    def factory(self) -> Any:
        kind = LMTP if self.lmtp else SMTP
        return kind(self.handler, data_size_limit=MAX_BYTES, timeout=60)

    def _trigger_server(self) -> None:
        if not self.lmtp:
            super()._trigger_server()  # type: ignore[no-untyped-call]
            return
        import socket

        with socket.create_connection((self.hostname, self.port), timeout=5) as sock:
            sock.recv(1024)  # the LMTP greeting: the server is up


def listening(handle: Callable[[bytes], None], host: str, port: int, lmtp: bool) -> _Controller:
    """A started listener (call `.stop()` to end it); it answers on loopback only."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the inbound listener serves loopback only; put an MTA in front")
    controller = _Controller(_Handler(handle), host, port, lmtp)
    controller.start()
    return controller
