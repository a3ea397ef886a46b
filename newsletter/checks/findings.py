"""The report `newsletter check` gives: findings, their levels, and SpamAssassin's verdict.

Every finding says where it comes from (a front-matter field, a line of issue.md, a template,
newsletter.toml) and what to do about it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """How bad a finding is: errors fail `check`, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing to fix or consider, where it comes from and what to do about it."""

    level: Level
    code: str
    message: str
    where: str
    fix: str


@dataclass(frozen=True)
class SpamRule:
    """A SpamAssassin rule that fired, with its points."""

    name: str
    points: float
    description: str


@dataclass
class SpamReport:
    """SpamAssassin's verdict on a sample copy, or why there is none."""

    available: bool
    score: float | None = None
    threshold: float | None = None
    rules: list[SpamRule] = field(default_factory=list)
    note: str | None = None


@dataclass
class CheckReport:
    """Every finding about an issue, and the sizes of what was built (None if it did not)."""

    findings: list[Finding]
    html_bytes: int | None = None
    text_bytes: int | None = None
    image_bytes: int = 0
    spam: SpamReport | None = None

    @property
    def counts(self) -> dict[str, int]:
        """How many errors and warnings there are."""
        levels = Counter(finding.level for finding in self.findings)
        return {"errors": levels[Level.ERROR], "warnings": levels[Level.WARNING]}

    def to_json(self) -> dict[str, Any]:
        """The report as plain data for `--json`."""
        return {
            "ok": self.counts["errors"] == 0,
            "counts": self.counts,
            "sizes": {
                "html_bytes": self.html_bytes,
                "text_bytes": self.text_bytes,
                "image_bytes": self.image_bytes,
            },
            "findings": [asdict(finding) for finding in self.findings],
            "spam": asdict(self.spam) if self.spam else None,
        }


def plural(count: int, word: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def error_finding(code: str, message: str, where: str, fix: str) -> Finding:
    """A finding that fails `check`."""
    return Finding(Level.ERROR, code, message, where, fix)


def warning_finding(code: str, message: str, where: str, fix: str) -> Finding:
    """A finding to consider; it does not fail `check`."""
    return Finding(Level.WARNING, code, message, where, fix)
