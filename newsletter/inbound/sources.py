"""Where inbound mail is read from: a Maildir, an mbox file, a folder of .eml files, or IMAP.

Reading never changes a local mailbox. On IMAP, messages are fetched without marking them
read; a handled one is moved to a "processed" folder and an unrecognised one may be moved
aside. Nothing is ever deleted: where the server lacks MOVE (RFC 6851), the message is
copied and tagged with a keyword, and the original stays where it was.
"""

from __future__ import annotations

import mailbox
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from newsletter.errors import InputError, NewsletterError, Problem

HANDLED_KEYWORD = "$NewsletterHandled"
_BATCH = 50


class MailSourceError(NewsletterError):
    """The mail server could not be reached, refused the login, or failed a command."""


@dataclass(frozen=True)
class Inbound:
    """One raw message and the key it has in its source (file name, index, or IMAP UID)."""

    key: str
    raw: bytes


def read_path(path: Path) -> Iterator[Inbound]:
    """The messages of a Maildir (a folder with cur/ and new/), an mbox file, or a folder of
    .eml files, in a stable order."""
    if (path / "cur").is_dir() and (path / "new").is_dir():
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, factory=None, create=False)
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
    elif path.is_dir():
        for file in sorted(path.glob("*.eml")):
            yield Inbound(file.name, file.read_bytes())
        return
    else:
        problem = Problem("no such Maildir, mbox file or folder of .eml files", path=path)
        raise InputError(problem)
    try:
        for key in sorted(box.keys()):
            yield Inbound(str(key), box.get_bytes(key))
    finally:
        box.close()


@dataclass(frozen=True)
class ImapSettings:
    """How to reach one IMAP mailbox; the password comes from the caller (an environment
    variable or a file outside the repository), never from the project's files."""

    host: str
    username: str
    password: str
    port: int = 993
    ssl: bool = True
    folder: str = "INBOX"
    processed: str = "Newsletter/Processed"
    unrecognised: str = "Newsletter/Unrecognised"
    timeout: float = 30.0


class ImapMailbox:
    """An open IMAP mailbox: `with ImapMailbox(settings) as box: for m in box.messages(): ...`"""

    def __init__(self, settings: ImapSettings) -> None:
        self._settings = settings
        self._client: IMAPClient | None = None

    def __enter__(self) -> ImapMailbox:
        s = self._settings
        try:
            client = IMAPClient(s.host, port=s.port, ssl=s.ssl, timeout=s.timeout)
        except (OSError, ssl.SSLError, IMAPClientError) as error:
            raise self._error("cannot connect", error) from None
        self._client = client
        try:
            client.login(s.username, s.password)
            for folder in (s.processed, s.unrecognised):
                if not client.folder_exists(folder):
                    client.create_folder(folder)
            client.select_folder(s.folder)
        except (OSError, IMAPClientError) as error:
            self._close()
            raise self._error("the server refused", error) from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (OSError, IMAPClientError):
                client.shutdown()

    def _error(self, what: str, error: BaseException) -> MailSourceError:
        s = self._settings
        return MailSourceError(f"IMAP {s.host}:{s.port}: {what}: {error}")

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailSourceError("the IMAP mailbox is not open; use it in a `with` block")
        return self._client

    def messages(self) -> Iterator[Inbound]:
        """Every message of the folder, oldest first, fetched without marking it read."""
        try:
            uids = sorted(self.client.search(["NOT", "KEYWORD", HANDLED_KEYWORD]))
            for start in range(0, len(uids), _BATCH):
                batch = uids[start : start + _BATCH]
                fetched = self.client.fetch(batch, ["BODY.PEEK[]"])
                for uid in batch:
                    raw = fetched.get(uid, {}).get(b"BODY[]")
                    if isinstance(raw, bytes):
                        yield Inbound(str(uid), raw)
        except (OSError, IMAPClientError) as error:
            raise self._error("reading failed", error) from None

    def processed(self, key: str) -> None:
        """Move a handled message to the processed folder."""
        self._move(key, self._settings.processed)

    def set_aside(self, key: str) -> None:
        """Move an unrecognised message to the folder for a person to look at."""
        self._move(key, self._settings.unrecognised)

    def _move(self, key: str, folder: str) -> None:
        uid = int(key)
        try:
            if self.client.has_capability("MOVE"):
                self.client.move([uid], folder)
            else:
                self.client.copy([uid], folder)
                self.client.add_flags([uid], [HANDLED_KEYWORD])
        except (OSError, IMAPClientError) as error:
            raise self._error(f"moving a message to {folder} failed", error) from None
