"""The unsubscribe journal: unsubscribes that could not be written yet, kept on disk.

RFC 8058 asks that a one-click unsubscribe be honoured. When the database's write lock stays
held (an import, a long send) longer than a web request may wait, the request's token is
appended to this file (flushed and fsynced before the answer) and applied as soon as the
database can be written: by `newsletter serve` in the background and by `newsletter send`
before it picks its recipients. The file holds tokens, which name nobody by address.

Applying is idempotent: an entry whose subscriber is no longer active, or changed their status
after the entry was written (they resubscribed), changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from newsletter.config import Config
from newsletter.deliver import db
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer
from newsletter.errors import DatabaseError, TokenError

#: Seconds to wait for another process to finish with the journal file.
LOCK_WAIT = 30.0


def journal_path(config: Config) -> Path:
    """Where the project's journal lives: beside its SQLite file, or in the project's
    `.newsletter` folder when the database is a server (one journal per host)."""
    database = config.database_location
    if isinstance(database, str):
        return config.path(".newsletter/unsubscribes.jsonl")
    return database.with_name(database.name + ".unsubscribes.jsonl")


class UnsubscribeJournal:
    """Append unsubscribe tokens; apply them to the store once it can be written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        """The file opened for reading and appending, under an exclusive lock (between
        processes too), waited for at most LOCK_WAIT seconds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseError(f"{self.path} stayed locked") from None
                    time.sleep(0.01)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, token: str, source: str) -> None:
        """Record an unsubscribe durably (on disk when this returns)."""
        line = json.dumps({"token": token, "source": source, "at": db.now()})
        with self._locked() as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> bool:
        """Whether there is anything to apply."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def apply(self, store: SubscriberStore, signer: Signer) -> int:
        """Apply every entry and empty the file; how many people it unsubscribed.

        A locked database raises sqlite3.OperationalError with the file left as it was.
        """
        if not self.pending():
            return 0
        applied = 0
        with self._locked() as handle:
            handle.seek(0)
            for line in handle.read().splitlines():
                applied += self._apply_one(store, signer, line)
            handle.truncate(0)
            handle.flush()
            os.fsync(handle.fileno())
        return applied

    @staticmethod
    def _apply_one(store: SubscriberStore, signer: Signer, line: str) -> int:
        try:
            entry = json.loads(line)
            owner = signer.read_subscriber_token(str(entry["token"]))
        except (ValueError, KeyError, TypeError, TokenError):
            return 0  # a torn last line after a crash, or a key that changed since
        subscriber = owner.find(store)
        if subscriber is None or subscriber.status != Status.ACTIVE:
            return 0
        if subscriber.status_changed_at > str(entry.get("at", "")):
            return 0  # they subscribed again after asking to leave
        reason = f"unsubscribe link in {owner.context} (journaled at {entry.get('at')})"
        store.set_status(
            subscriber.id, Status.UNSUBSCRIBED, reason, source=str(entry["source"]),
            issue=owner.context,
        )  # fmt: skip
        return 1


def apply_journal(config: Config, signer: Signer, store: SubscriberStore) -> int:
    """Apply the project's journal, if it has entries; how many people it unsubscribed.

    A database still locked raises DatabaseError: sending before the journal is applied could
    mail someone who asked to leave.
    """
    try:
        return UnsubscribeJournal(journal_path(config)).apply(store, signer)
    except sqlite3.OperationalError as exc:
        raise DatabaseError(
            f"cannot apply the unsubscribes waiting in {journal_path(config)}: {exc}; "
            "try again when the database is free"
        ) from None
