"""Policy rejections that came back: the receiving side refused mail because of the sender
(reputation, authentication, content, rate), not because of the reader."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from newsletter.doctor.results import CheckResult, passed, warned

NAME = "policy rejections"
#: How far back the check looks.
DAYS = 30
_SHOWN = 3


def rejections_verdict(rejections: Sequence[Mapping[str, str]], days: int = DAYS) -> CheckResult:
    """Judge the flagged policy rejections (newest first, each with issue, status, reason)."""
    if not rejections:
        return passed(NAME, f"no policy rejections came back in the last {days} days")
    issues = Counter(row["issue"] or "no issue matched" for row in rejections)
    per_issue = ", ".join(f"{issue}: {count}" for issue, count in issues.most_common())
    latest = "; ".join(
        " ".join(part for part in (row["status"], row["reason"]) if part) or "no reason given"
        for row in rejections[:_SHOWN]
    )
    return warned(
        NAME,
        f"{len(rejections)} in the last {days} days ({per_issue}); the latest: {latest}",
        "receivers refused mail for the sender's sake: check SPF, DKIM and DMARC above, "
        "blocklists, the content and the rate; newsletter inbound list --kind bounce shows each",
    )
