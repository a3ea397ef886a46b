"""What every doctor check returns: a name, a level, what was found and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """How a check came out; `fail` makes `newsletter doctor` exit 1."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `fix` is empty when there is nothing to do."""

    name: str
    level: Level
    finding: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """The result as plain data, for JSON."""
        return {
            "name": self.name,
            "level": self.level.value,
            "finding": self.finding,
            "fix": self.fix,
        }


def passed(name: str, finding: str, fix: str = "") -> CheckResult:
    """A passing result."""
    return CheckResult(name, Level.PASS, finding, fix)


def warned(name: str, finding: str, fix: str) -> CheckResult:
    """A warning: delivery may suffer; `fix` says how to avoid it."""
    return CheckResult(name, Level.WARN, finding, fix)


def failed(name: str, finding: str, fix: str) -> CheckResult:
    """A failure: mail will be refused, filtered or unauthenticated until `fix` is done."""
    return CheckResult(name, Level.FAIL, finding, fix)
