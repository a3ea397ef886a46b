"""Reading the one-off mails (sign-up confirmations) a test's web app wrote into the outbox."""

from __future__ import annotations

import mailbox
import time
from email import message_from_bytes, policy

from newsletter.config import Config


def notices(config: Config, expect: int) -> list[str]:
    """The confirmation emails' text, once `expect` of them are there (at most 5 s)."""
    box = config.path(config.sending.outbox) / "notices"
    deadline = time.monotonic() + 5
    while True:
        found = []
        if (box / "cur").exists():
            for message in mailbox.Maildir(box, create=False):
                parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
                found.append(parsed.get_body(("plain",)).get_content())
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.02)
