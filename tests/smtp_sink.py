"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording or refusing what it gets.

`Sink` decides per recipient: accept, refuse at RCPT with a given reply (451, 550...), drop
the connection in the middle of DATA, or take the message and drop the connection before
replying; it can also drop every Nth DATA and stall a connection (by its number) at MAIL.
`stalled_server` accepts connections and never says a word. It can be run in a thread of the test
process (`running_sink`) or as its own process (`python tests/smtp_sink.py PORT`), counting and
discarding. `python tests/smtp_sink.py PORT --tally` runs `_TallyServer` instead: a bare SMTP
responder for benchmarks that need a sink faster than their senders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import ClassVar

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
    drop_before_reply: Callable[[str], bool] = lambda address: False
    drop_every_data: int = 0
    stall: Callable[[int], float] = lambda connection: 0.0
    connections: int = 0
    datas: int = 0
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
        if envelope.rcpt_tos and self.drop_before_reply(envelope.rcpt_tos[0]) and server.transport:
            server.transport.close()  # taken, and the reply never comes
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
    """Closes the connection right after '354' for recipients the sink wants dropped (and
    every Nth DATA); stalls at MAIL on the connections the sink wants stalled."""

    number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sink: Sink = self.event_handler
        with sink.lock:
            sink.connections += 1
            self.number = sink.connections
        super().connection_made(transport)

    async def smtp_MAIL(self, arg: str) -> None:
        sink: Sink = self.event_handler
        delay = sink.stall(self.number)
        if delay:
            await asyncio.sleep(delay)
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        sink: Sink = self.event_handler
        with sink.lock:
            sink.datas += 1
            every = sink.drop_every_data and sink.datas % sink.drop_every_data == 0
        rcpts = self.envelope.rcpt_tos if self.envelope else []
        if rcpts and self.transport and (every or sink.drop_mid_data(rcpts[0])):
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


@dataclass
class Stalled:
    """A server that never answers: its port and the connections it holds."""

    port: int
    held: list[socket.socket] = field(default_factory=list)


@contextlib.contextmanager
def stalled_server() -> Iterator[Stalled]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stalled = Stalled(int(listener.getsockname()[1]))
    held = stalled.held
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield stalled
    finally:
        done.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


class _Counting:
    """For the benchmark sink process: counts and discards."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += len(envelope.rcpt_tos)
        return "250 OK"


class _TallyServer(asyncio.Protocol):
    """A bare SMTP responder on asyncio: scans DATA for its end instead of handling it line by
    line (aiosmtpd's pure-Python DATA takes ~150 copies of 60 KB a second on a small machine),
    counts the messages and remembers each recipient once. Shared state is on the class."""

    lock: ClassVar[threading.Lock] = threading.Lock()
    messages: ClassVar[int] = 0
    recipients: ClassVar[set[str]] = set()

    def __init__(self) -> None:
        self.buffer = b""
        self.in_data = False
        self.rcpts: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"220 127.0.0.1 tally sink\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    self.buffer = self.buffer[-4:]  # the end mark may straddle two reads
                    return
                self.buffer, self.in_data = self.buffer[end + 5 :], False
                with self.lock:
                    type(self).messages += len(self.rcpts)
                    self.recipients.update(self.rcpts)
                self.rcpts = []
                self.transport.write(b"250 2.0.0 OK\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                return
            self.buffer = rest
            self.transport.write(self.reply(line.decode("utf-8", "replace")))

    def reply(self, line: str) -> bytes:
        verb = line[:4].upper()
        if verb == "EHLO":
            return b"250-127.0.0.1\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
        if verb == "RCPT":
            self.rcpts.append(line.partition(":")[2].strip().partition(" ")[0].strip("<>"))
        elif verb in ("MAIL", "RSET"):
            self.rcpts = []
        elif verb == "DATA":
            self.in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        elif verb == "QUIT":
            assert self.transport is not None
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
            return b""
        return b"250 OK\r\n"

    @classmethod
    def tally(cls) -> str:
        """Messages and distinct recipients since the last tally, as JSON; starts afresh."""
        with cls.lock:
            counts = {"messages": cls.messages, "recipients": len(cls.recipients)}
            cls.messages, cls.recipients = 0, set()
        return json.dumps(counts)


def _serve_tallies(port: int) -> None:
    """Run `_TallyServer` in a thread; answer each `tally` line on stdin; stop at EOF."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_TallyServer, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "tally":
                print(_TallyServer.tally(), flush=True)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


if __name__ == "__main__":  # a standalone sink: python tests/smtp_sink.py PORT [--tally]
    if "--tally" in sys.argv[2:]:
        with contextlib.suppress(KeyboardInterrupt):
            _serve_tallies(int(sys.argv[1]))
        sys.exit()
    handler = _Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(asyncio.Event().wait())
    controller.stop()
