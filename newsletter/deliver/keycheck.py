"""The signing key's fingerprint, kept in the database, so a changed key is noticed.

Every link in an email already sent is signed with the key of its day. If the key changes (the
key file was lost, NEWSLETTER_SECRET was set or unset), those links stop working, silently. The
first command that signs links records the key's fingerprint; later ones compare against it.
"""

from __future__ import annotations

from newsletter.deliver import db
from newsletter.deliver.tokens import Signer
from newsletter.errors import KeyChangedError, Problem

_NAME = "signing_key_fingerprint"


def check_signing_key(conn: db.Connection, signer: Signer, source: str, *,
                      accept: bool = False) -> None:  # fmt: skip
    """Record the key's fingerprint on first use; KeyChangedError if it differs later.

    `source` says where the key came from (for the message); `accept` records a new key.
    """
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (_NAME,)).fetchone()
    if row is not None and row[0] != signer.fingerprint and not accept:
        raise KeyChangedError(
            Problem(
                f"the signing key (from {source}) is not the one the links already sent were "
                "signed with: every unsubscribe and preferences link in earlier emails would "
                "stop working. Restore the previous key (the key file, or NEWSLETTER_SECRET), "
                "or pass --accept-new-key (to send or serve) if you replaced it on purpose",
                code="signing-key-changed",
            )
        )
    if row is None or row[0] != signer.fingerprint:
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (_NAME, signer.fingerprint),
        )
