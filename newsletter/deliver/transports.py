"""Where messages go: an SMTP relay, or the outbox (a Maildir any mail client can read).

A transport is opened, sends many messages, and is closed. `send` calls `commit_point()` just
before the message becomes irrevocable (before SMTP's final "." / before the Maildir rename),
so the sender can record "sending" at the last safe instant: a crash before it means the
server never accepted the message; a crash after it is the one uncertain case.

    TransportError          exit 1: cannot connect, log in or start TLS (nothing was sent)
    DeliveryError           one message was not accepted
    ├── permanent (5xx)     do not retry; 550/551/553 mean the address bounced
    ├── temporary (4xx)     retry later
    └── Unsendable          this transport cannot carry this copy (permanent, not a bounce)
    ConnectionLost          the connection dropped (or timed out) before the final ".", or
                            was reset with the "." unread: the server cannot have the message,
                            so it is retried
    ReplyLost               the connection was closed (or timed out) after the final "." and
                            before the reply: the server may have the message. This is the
                            same uncertain case as a crash at that instant (ledger.py).

A server that read everything and then closes sends an orderly close (FIN); one that closes
with data still unread makes the kernel answer with a reset (RST), which is how a connection
dropped in the middle of DATA is told from a reply lost after an accepted message.

An exception raised by `commit_point()` aborts the message: the connection is closed before the
final ".", so the server discards what it got.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from newsletter.config import SmtpServer
from newsletter.deliver.addresses import needs_smtputf8, wire_address
from newsletter.errors import ConfigError, NewsletterError, Problem

BOUNCE_CODES = frozenset({550, 551, 553})


class TransportError(NewsletterError):
    """The transport cannot be used at all (connection, login, TLS)."""


class ConnectionLost(Exception):
    """The connection dropped before the final ".": the message was not accepted."""


class ReplyLost(Exception):
    """The connection dropped after the final "." and before the reply: maybe delivered."""


@dataclass
class DeliveryError(Exception):
    """The server refused one message."""

    code: int
    reply: str

    @property
    def permanent(self) -> bool:
        """5xx: retrying will not help."""
        return self.code >= 500

    @property
    def bounced(self) -> bool:
        """The address does not exist or is refused for good."""
        return self.code in BOUNCE_CODES

    def __str__(self) -> str:
        return f"{self.code} {self.reply}"


class Unsendable(DeliveryError):
    """This transport cannot carry the copy at all: it fails for good, the address is fine."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)

    @property
    def permanent(self) -> bool:
        """Never retried."""
        return True

    def __str__(self) -> str:
        return self.reply


NO_SMTPUTF8 = "the relay does not support SMTPUTF8, which this address needs"


class Transport(Protocol):
    """Anything that can deliver messages: opened once, reused, closed."""

    name: str

    def open(self) -> None:
        """Connect (raises TransportError)."""

    def send(
        self, sender: str, recipient: str, data: bytes, commit_point: Callable[[], None]
    ) -> str:
        """Deliver one message; return the server's reply."""

    def close(self) -> None:
        """Disconnect, quietly."""

    def abort(self) -> None:
        """From another thread: make a blocked `open` or `send` fail at once."""


def _reply(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())


def _dot_stuffed(data: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2): a line starting with '.' gets another one."""
    if not data.startswith(b".") and b"\n." not in data:
        return data  # the common case, found by a fast scan instead of a regex pass
    return re.sub(rb"(?m)^\.", b"..", data)


def _envelope(smtp: smtplib.SMTP, sender: str, recipient: str) -> tuple[str, str, tuple[str, ...]]:
    """Sender, recipient and MAIL options: domains in IDNA, SMTPUTF8 where a local part needs
    it (Unsendable when the relay does not offer it)."""
    if sender.isascii() and recipient.isascii():
        return sender, recipient, ()
    sender, recipient = wire_address(sender), wire_address(recipient)
    if not needs_smtputf8(sender, recipient):
        return sender, recipient, ()
    if not smtp.has_extn("smtputf8"):
        raise Unsendable(NO_SMTPUTF8)
    eight_bit = ("BODY=8BITMIME",) if smtp.has_extn("8bitmime") else ()
    return sender, recipient, ("SMTPUTF8", *eight_bit)


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """Whether the server has already closed the connection (seen without blocking): then it
    cannot receive the final "." and the message is certainly not delivered."""
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket):
        return False  # no peeking under TLS; a closed connection shows when the "." is sent
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class SmtpTransport:
    """One SMTP connection to one relay, reused for many messages."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.name = server.name
        self._smtp: smtplib.SMTP | None = None
        self._connecting: smtplib.SMTP | None = None

    def _password(self) -> str | None:
        if not self.server.username:
            return None
        password = os.environ.get(self.server.password_env)
        if password is None:
            raise ConfigError(
                Problem(
                    f"smtp '{self.name}' has a username but ${self.server.password_env} is "
                    "not set; export the password in that environment variable"
                )
            )
        return password

    def open(self) -> None:
        """Connect, start TLS as configured and log in."""
        server = self.server
        where = f"SMTP server '{server.name}' at {server.host}:{server.port}"
        password = self._password()
        context = ssl.create_default_context()
        try:
            if server.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(timeout=server.timeout, context=context)
            else:
                smtp = smtplib.SMTP(timeout=server.timeout)
            smtp._host = server.host  # type: ignore[attr-defined]  # TLS server name
            self._connecting = smtp  # so that abort() can reach it while it connects
            smtp.connect(server.host, server.port)
            # The final "." goes in its own tiny write after the commit point: without
            # TCP_NODELAY, Nagle's algorithm holds it until the body is acknowledged, and the
            # server's delayed ACK makes every message wait about 40 ms.
            if smtp.sock is not None:
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo()
            if server.security == "starttls":
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise TransportError(
                        f'{where} does not offer STARTTLS; set security = "tls" or "none"'
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if server.username and password is not None:
                smtp.login(server.username, password)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
            code = getattr(exc, "smtp_code", "")
            raise TransportError(
                f"{where} refused the login for '{server.username}' ({code or exc}); "
                f"check the username and ${server.password_env}"
            ) from None
        except ssl.SSLError as exc:
            raise TransportError(
                f"{where}: TLS failed ({exc.reason or exc}); check the port and security"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TransportError(
                f"{where} is unreachable ({reason or type(exc).__name__}); check host and port"
            ) from None
        finally:
            self._connecting = None
        self._smtp = smtp

    def send(
        self, sender: str, recipient: str, data: bytes, commit_point: Callable[[], None]
    ) -> str:
        """MAIL, RCPT, DATA; `commit_point()` runs just before the final '.'."""
        smtp = self._smtp
        if smtp is None:
            raise ConnectionLost("not connected")
        sender, recipient, options = _envelope(smtp, sender, recipient)
        try:
            for command, args, accepted in (
                (smtp.mail, (sender, options), (250,)),
                (smtp.rcpt, (recipient,), (250, 251)),
                (smtp.docmd, ("DATA",), (354,)),
            ):
                code, message = command(*args)
                if code not in accepted:
                    if code != 421:
                        smtp.rset()
                    raise DeliveryError(code, _reply(message))
            smtp.send(_dot_stuffed(data).rstrip(b"\r\n") + b"\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise ConnectionLost(str(exc) or type(exc).__name__) from None
        try:
            commit_point()
        except BaseException:
            self._drop()  # no final ".": the server discards the message
            raise
        try:
            if _closed_by_peer(smtp.sock):
                raise smtplib.SMTPServerDisconnected("the server closed the connection")
            smtp.send(b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()  # the "." never reached the server
            raise ConnectionLost(str(exc) or type(exc).__name__) from None
        try:
            code, message = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            if isinstance(exc, ConnectionResetError) or isinstance(
                exc.__context__, ConnectionResetError
            ):
                # A reset, not an orderly close: the server closed with our data unread (or it
                # arrived after the close), so it never read the final "." either.
                raise ConnectionLost(str(exc)) from None
            raise ReplyLost(str(exc) or type(exc).__name__) from None
        if code != 250:
            raise DeliveryError(code, _reply(message))
        return f"{code} {_reply(message)}"

    def close(self) -> None:
        """QUIT if still connected; never raises."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _drop(self) -> None:
        """Close without QUIT: the connection is broken or in the middle of a message."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def abort(self) -> None:
        """Shut the socket down under a blocked call (it then fails at once); never raises."""
        for smtp in (self._smtp, self._connecting):
            sock = getattr(smtp, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class MaildirTransport:
    """Writes each message as a file into a Maildir (tmp/, then renamed into new/)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = "outbox"
        self._count = 0

    def open(self) -> None:
        """Create the Maildir's tmp, new and cur folders."""
        try:
            for sub in ("tmp", "new", "cur"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(
                f"cannot create the outbox {self.folder}: {exc.strerror}"
            ) from None

    def send(
        self, sender: str, recipient: str, data: bytes, commit_point: Callable[[], None]
    ) -> str:
        """Write to tmp/, then `commit_point()`, then rename into new/. The file starts with
        a `Return-Path` naming the envelope sender, as a delivering MTA would write it."""
        self._count += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._count}.{socket.gethostname()}"
        temporary = self.folder / "tmp" / name
        return_path = f"Return-Path: <{sender}>\n".encode()
        try:
            temporary.write_bytes(return_path + data.replace(b"\r\n", b"\n"))
            commit_point()
            os.replace(temporary, self.folder / "new" / name)
        except OSError as exc:
            raise TransportError(f"cannot write into the outbox {self.folder}: {exc}") from None
        return f"250 written to {self.folder / 'new' / name}"

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing blocks for long."""
