"""A subscriber's status, on its own so that the CLI can offer it without loading the store."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a subscriber stands; only active ones are sent to."""

    ACTIVE = "active"
    PENDING = "pending"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
