"""A reader's own choices: the topics they receive (tags behind `[[topics]]`) and their name.

Each change is written with its source and time in `preference_changes`, as status changes are
in `status_changes`; erasing a subscriber erases these rows with them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from newsletter.config import Config, Topic
from newsletter.deliver import db
from newsletter.deliver.subscribers import Subscriber, SubscriberStore, check_header_safe


@dataclass(frozen=True)
class Choice:
    """One topic as the preferences page shows it."""

    topic: Topic
    chosen: bool


def choices(config: Config, subscriber: Subscriber) -> list[Choice]:
    """Every configured topic, ticked when the subscriber has its tag."""
    tags = {tag.casefold() for tag in subscriber.tags}
    return [Choice(topic, topic.tag.casefold() in tags) for topic in config.topics]


def save_preferences(
    store: SubscriberStore,
    config: Config,
    subscriber: Subscriber,
    chosen: Collection[str],
    first_name: str,
    *,
    source: str,
) -> list[str]:
    """Give the subscriber exactly the topics named in `chosen` (other tags stay) and this
    first name; record and return what changed ('topic Science: on', 'first name')."""
    first_name = check_header_safe(" ".join(first_name.split())[:100], "first_name")
    wanted = {name.casefold() for name in chosen}
    before = {choice.topic.name: choice.chosen for choice in choices(config, subscriber)}
    now = db.now()
    changes: list[tuple[str, str]] = []
    conn = store.conn
    conn.begin()
    try:
        for topic in config.topics:
            on = topic.name.casefold() in wanted
            if on == before[topic.name]:
                continue
            if on:
                conn.execute(
                    "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (subscriber.id, topic.tag),
                )
            else:
                conn.execute(
                    "DELETE FROM subscriber_tags WHERE subscriber_id = ? AND tag = ?",
                    (subscriber.id, topic.tag),
                )
            changes.append((f"topic {topic.name}", "on" if on else "off"))
        if first_name != subscriber.first_name:
            conn.execute(
                "UPDATE subscribers SET first_name = ? WHERE id = ?", (first_name, subscriber.id)
            )
            changes.append(("first name", first_name))
        conn.executemany(
            "INSERT INTO preference_changes (subscriber_id, what, value, source, changed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(subscriber.id, what, value, source, now) for what, value in changes],
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return [what for what, _ in changes]


def preference_history(store: SubscriberStore, subscriber_id: int) -> list[dict[str, str]]:
    """The subscriber's preference changes, oldest first: what, value, source, changed_at."""
    rows = store.conn.execute(
        "SELECT what, value, source, changed_at FROM preference_changes"
        " WHERE subscriber_id = ? ORDER BY id",
        (subscriber_id,),
    )
    return [dict(row) for row in rows]
