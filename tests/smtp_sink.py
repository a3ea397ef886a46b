"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording or refusing what it gets.

`Sink` decides per recipient: accept, refuse at RCPT with a given reply (451, 550...), or
drop the connection in the middle of DATA (once). It can be run in a thread of the test
process (`running_sink`) or as its own process (`python tests/smtp_sink.py PORT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Sink:
    """Records accepted messages; `refuse(addr)` may return a reply to refuse a recipient.

    `smtputf8` offers the SMTPUTF8 extension (RFC 6531); `envelopes` records each accepted
    message's MAIL FROM address and options.
    """

    smtputf8: bool = True
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: Callable[[str], str | None] = lambda address: None
    drop_mid_data: Callable[[str], bool] = lambda address: False
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.refuse(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.envelopes.append((str(envelope.mail_from), list(envelope.mail_options)))
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, bytes(envelope.original_content or b"")))
        return "250 2.0.0 Queued"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.messages)

    def parsed(self) -> list[tuple[str, EmailMessage]]:
        with self.lock:
            return [
                (rcpt, message_from_bytes(data, policy=policy.default))  # type: ignore[misc]
                for rcpt, data in self.messages
            ]


class _DroppingSMTP(SMTP):
    """Closes the connection right after '354' for recipients the sink wants dropped."""

    async def smtp_DATA(self, arg: str) -> None:
        sink: Sink = self.event_handler
        if self.envelope.rcpt_tos and sink.drop_mid_data(self.envelope.rcpt_tos[0]):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        smtputf8 = self.handler.smtputf8
        return _DroppingSMTP(self.handler, data_size_limit=None, enable_SMTPUTF8=smtputf8)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_sink(sink: Sink) -> Iterator[int]:
    """Run `sink` on 127.0.0.1 in a thread; yield its port; stop it afterwards."""
    port = free_port()
    controller = _Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class _Counting:
    """For the benchmark sink process: counts and discards."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += len(envelope.rcpt_tos)
        return "250 OK"


if __name__ == "__main__":  # a standalone counting sink: python tests/smtp_sink.py PORT
    handler = _Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(asyncio.Event().wait())
    controller.stop()
