"""Who a send goes to: a segment of the active subscribers, as SQL, as a stored text, and as
the `send` options that ask for it again.

A segment is any of some tags (none: everyone), minus everyone with one of the excluded tags,
optionally only those who became active after a moment (a catch-up), or one subscriber (a
welcome). It is stored as JSON in the `sends` table so that a resume reaches exactly the same
people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from newsletter.deliver import db
from newsletter.errors import EmptySegment, Problem


def _tags(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Tags trimmed, without repeats (ignoring case, as the database compares them), sorted."""
    seen: dict[str, str] = {}
    for value in values:
        tag = value.strip()
        if tag:
            seen.setdefault(tag.casefold(), tag)
    return tuple(seen[key] for key in sorted(seen))


@dataclass(frozen=True)
class Segment:
    """Active subscribers with any of `tags` (none: all), none of `exclude`, active since
    after `since` (an ISO time; '' for any time) and, if `subscriber` is set, only that one."""

    tags: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    since: str = ""
    subscriber: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _tags(self.tags))
        object.__setattr__(self, "exclude", _tags(self.exclude))

    def sql(self, dialect: db.Dialect) -> tuple[str, list[Any]]:
        """`AND ...` conditions on the subscribers table aliased `s`, with their parameters."""
        where, params = "", list[Any]()
        for tags, verb in ((self.tags, "IN"), (self.exclude, "NOT IN")):
            if tags:
                marks = ",".join("?" * len(tags))
                where += (
                    f" AND s.id {verb} (SELECT subscriber_id FROM subscriber_tags "
                    f"WHERE tag IN ({marks}))"
                )
                params += tags
        if self.since:
            where += f" AND {dialect.later('s.status_changed_at')}"
            params.append(self.since)
        if self.subscriber:
            where += " AND s.id = ?"
            params.append(self.subscriber)
        return where, params

    def encode(self) -> str:
        """The segment as stored (JSON; '' for everyone)."""
        fields = {
            "tags": list(self.tags), "exclude": list(self.exclude), "since": self.since,
            "subscriber": self.subscriber,
        }  # fmt: skip
        kept = {name: value for name, value in fields.items() if value}
        return json.dumps(kept, sort_keys=True) if kept else ""

    @classmethod
    def decode(cls, text: str | None) -> Segment:
        """A stored segment; a plain word (a schedule written by an older version) is a tag."""
        if not text:
            return cls()
        if not text.startswith("{"):
            return cls(tags=(text,))
        data = json.loads(text)
        return cls(
            tuple(data.get("tags", ())), tuple(data.get("exclude", ())),
            str(data.get("since", "")), int(data.get("subscriber", 0)),
        )  # fmt: skip

    def describe(self) -> str:
        """In words, for prompts and messages."""
        if self.subscriber:
            return f"subscriber {self.subscriber} only"
        parts = [f"subscribers tagged {' or '.join(self.tags)}" if self.tags else "everyone"]
        if self.exclude:
            parts.append(f"except those tagged {' or '.join(self.exclude)}")
        if self.since:
            parts.append(f"who became active after {self.since}")
        return " ".join(parts)

    def options(self) -> list[str]:
        """The `newsletter send` options that ask for this segment again."""
        words: list[str] = []
        for tag in self.tags:
            words += ["--tag", tag]
        for tag in self.exclude:
            words += ["--exclude-tag", tag]
        if self.since:
            words.append("--new-since-sent")
        return words


def check_tags(conn: db.Connection, segment: Segment) -> None:
    """Refuse (exit 2) a segment naming a tag (to include or exclude) no active subscriber has.

    A misspelt tag would reach nobody, and a misspelt exclusion the very readers it was meant
    to leave out; the editor removes the tag or fixes it.
    """
    missing = [
        tag
        for tag in (*segment.tags, *segment.exclude)
        if conn.execute(
            "SELECT 1 FROM subscriber_tags t JOIN subscribers s ON s.id = t.subscriber_id "
            "WHERE t.tag = ? AND s.status = 'active' LIMIT 1",
            [tag],
        ).fetchone()
        is None
    ]
    if missing:
        names = ", ".join(f"'{tag}'" for tag in missing)
        raise EmptySegment(
            Problem(
                f"no active subscriber has the tag {names}, so nothing was sent; fix the tag "
                "or leave it out ('newsletter subscribers tags' lists them)",
                code="empty-segment",
            )
        )
