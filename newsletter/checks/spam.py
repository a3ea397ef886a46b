"""What spam filters make of the email: the text-to-image ratio, and SpamAssassin's score.

With `spam=True`, SpamAssassin (when installed) scores one complete sample message offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

from newsletter.checks.findings import Finding, SpamReport, SpamRule, warning_finding
from newsletter.checks.page import HTML, Page
from newsletter.compose.build import BuiltIssue
from newsletter.config import Config
from newsletter.deliver.message import MessageFactory, Recipient
from newsletter.deliver.tokens import Signer

#: Fewer visible characters per image than this reads as an image-only email to spam filters.
MIN_TEXT_PER_IMAGE = 100
#: Seconds SpamAssassin may take to score the sample message.
SPAM_TIMEOUT = 300
SPAM_NOT_INSTALLED = "SpamAssassin is not installed; install it with: apt-get install spamassassin"


def ratio_findings(page: Page) -> Iterator[Finding]:
    """Too little text for the images: what spam filters read as an image-only email."""
    images = sum(1 for _ in page.visible("img"))
    if images and len(page.text) / images < MIN_TEXT_PER_IMAGE:
        yield warning_finding(
            "low-text-ratio",
            f"{len(page.text)} characters of text for {images} images: spam filters distrust "
            "emails that are mostly images",
            HTML,
            f"write at least {MIN_TEXT_PER_IMAGE} characters of text per image",
        )


def sample_message(built: BuiltIssue, config: Config) -> bytes:
    """One complete personalised copy for a sample reader, exactly as it would be sent."""
    factory = MessageFactory(built, config, Signer(b"check"))
    return factory.render(Recipient("reader@example.com", "Sample", "Reader")).data


_SA_TOTALS = re.compile(r"Content analysis details:\s*\((-?[\d.]+) points, (-?[\d.]+) required\)")
_SA_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def parse_spam_report(output: str) -> SpamReport:
    """Score, threshold and rules from the report `spamassassin -t` adds to a message."""
    output = output.replace("\r\n", "\n")
    totals = _SA_TOTALS.search(output)
    if totals is None:
        return SpamReport(True, note="SpamAssassin gave no report")
    rules: list[SpamRule] = []
    table = output[totals.end() :].split("\n\n", 2)[1:2]
    for line in "".join(table).splitlines():
        if match := _SA_RULE.match(line):
            rules.append(SpamRule(match[2], float(match[1]), match[3].strip()))
        elif rules and line.startswith(" " * 20):
            last = rules[-1]
            rules[-1] = SpamRule(last.name, last.points, f"{last.description} {line.strip()}")
    return SpamReport(True, float(totals[1]), float(totals[2]), rules)


def check_spam(built: BuiltIssue | None, config: Config) -> SpamReport:
    """Score a sample copy with SpamAssassin's local tests (no network), if it is installed."""
    program = shutil.which("spamassassin")
    if program is None:
        return SpamReport(False, note=SPAM_NOT_INSTALLED)
    if built is None:
        return SpamReport(True, note="not scored: fix the errors first so that the issue builds")
    try:
        result = subprocess.run(
            [program, "-L", "-t"],
            input=sample_message(built, config),
            capture_output=True,
            timeout=SPAM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SpamReport(True, note=f"SpamAssassin could not score the message: {exc}")
    return parse_spam_report(result.stdout.decode("utf-8", errors="replace"))


def spam_findings(report: SpamReport) -> list[Finding]:
    """A warning when SpamAssassin's score reaches its spam threshold."""
    if report.score is None or report.threshold is None or report.score < report.threshold:
        return []
    top = sorted(report.rules, key=lambda rule: -rule.points)[:3]
    return [
        warning_finding(
            "spam-score",
            f"SpamAssassin scores the message {report.score} (spam from {report.threshold}); "
            f"biggest rules: {', '.join(f'{r.name} {r.points}' for r in top)}",
            "sample message",
            "fix what those rules point at, then run check --spam again",
        )
    ]
