"""The email rendered in headless Chromium (`check --render`): does it fit phones and desktops?"""

from __future__ import annotations

import tempfile
from pathlib import Path

from newsletter.browser import WIDTHS, content_widths
from newsletter.checks.findings import Finding, error_finding
from newsletter.compose.build import BuiltIssue, local_preview
from newsletter.publish.writer import write_build


def overflow_findings(measured: dict[int, int]) -> list[Finding]:
    """An error for each width at which the email is wider than the screen."""
    return [
        error_finding(
            "layout-overflow",
            f"at {width} px wide the email is {content} px wide: readers must scroll sideways",
            "email HTML",
            "look in the templates for a fixed width, image or table wider than the screen",
        )
        for width, content in measured.items()
        if content > width
    ]


def check_layout(built: BuiltIssue) -> list[Finding]:
    """Render the built email at phone and desktop widths and measure it."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_build(built, Path(scratch) / built.slug, local_preview(built))
        return overflow_findings(content_widths((folder / "preview.html").as_uri(), WIDTHS))
