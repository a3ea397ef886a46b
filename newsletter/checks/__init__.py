"""`newsletter check`: what would go wrong with an issue in the inbox, found before it is sent.

`findings` is the report; `content`, `email_html`, `css` and `spam` find things (`page` parses the
built HTML for them); `run` puts them together and is the edge that loads and builds the issue.
May import `compose`, `deliver.message` (to score a real copy for spam), `newsletter.browser`
and the shared modules; never `web` or `cli`.
"""

from newsletter.checks.findings import CheckReport, Finding, Level, plural
from newsletter.checks.run import load_config_for_check, run_check
from newsletter.checks.spam import parse_spam_report

__all__ = [
    "CheckReport",
    "Finding",
    "Level",
    "load_config_for_check",
    "parse_spam_report",
    "plural",
    "run_check",
]
