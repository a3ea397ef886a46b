"""newsletter: build responsive HTML newsletters from Markdown issues and send them over SMTP.

The public API, for Python users (see the README's "Use it from Python")::

    import newsletter

    config = newsletter.load_config()                 # newsletter.toml, found from here up
    issue = newsletter.load_issue("issues/2026-11-24-…")
    built = newsletter.build_issue(issue, config)     # HTML + text, merge tags as placeholders
    report = newsletter.run_check(issue.folder, config)
    print(newsletter.dry_run(config, issue))
    weekly = newsletter.SendOptions(segment=newsletter.Segment(tags=("weekly",)))
    sent = newsletter.send(config, issue, weekly)

Names are imported on first use, so `import newsletter` (and the CLI's start-up) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module it lives in.
_EXPORTS = {
    "Config": "newsletter.config",
    "load_config": "newsletter.config",
    "Issue": "newsletter.compose.models",
    "load_issue": "newsletter.compose.issues",
    "BuiltIssue": "newsletter.compose.build",
    "build_issue": "newsletter.compose.build",
    "CheckReport": "newsletter.checks",
    "run_check": "newsletter.checks",
    "Campaign": "newsletter.deliver.campaign",
    "SendOptions": "newsletter.deliver.campaign",
    "send": "newsletter.deliver.campaign",
    "dry_run": "newsletter.deliver.campaign",
    "test_send": "newsletter.deliver.campaign",
    "SendReport": "newsletter.deliver.sender",
    "Segment": "newsletter.deliver.segments",
    "SubscriberStore": "newsletter.deliver.subscribers",
    "Status": "newsletter.deliver.subscribers",
    "build_archive": "newsletter.publish.archive",
    "write_archive": "newsletter.publish.archive",
    "run_doctor": "newsletter.doctor.run",
    "NewsletterError": "newsletter.errors",
    "InputError": "newsletter.errors",
    "ConfigError": "newsletter.errors",
    "IssueError": "newsletter.errors",
    "Problem": "newsletter.errors",
}

__all__ = [
    "BuiltIssue",
    "Campaign",
    "CheckReport",
    "Config",
    "ConfigError",
    "InputError",
    "Issue",
    "IssueError",
    "NewsletterError",
    "Problem",
    "Segment",
    "SendOptions",
    "SendReport",
    "Status",
    "SubscriberStore",
    "__version__",
    "build_archive",
    "build_issue",
    "dry_run",
    "load_config",
    "load_issue",
    "run_check",
    "run_doctor",
    "send",
    "test_send",
    "write_archive",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'newsletter' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # what type checkers and editors see
    from newsletter.checks import CheckReport, run_check
    from newsletter.compose.build import BuiltIssue, build_issue
    from newsletter.compose.issues import load_issue
    from newsletter.compose.models import Issue
    from newsletter.config import Config, load_config
    from newsletter.deliver.campaign import Campaign, SendOptions, dry_run, send, test_send
    from newsletter.deliver.segments import Segment
    from newsletter.deliver.sender import SendReport
    from newsletter.deliver.subscribers import Status, SubscriberStore
    from newsletter.doctor.run import run_doctor
    from newsletter.errors import ConfigError, InputError, IssueError, NewsletterError, Problem
    from newsletter.publish.archive import build_archive, write_archive
