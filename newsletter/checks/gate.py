"""The gate before a real send: no draft, no `check` error (unless forced), every URL there.

`send_gate` returns the errors a `--force` overrode, for the ledger; otherwise it raises
SendRefused naming each reason. `url_gate` stops a send whose published images or links under
base_url do not answer.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.checks.findings import Level
from newsletter.checks.run import run_check
from newsletter.checks.urls import published_urls, unreachable
from newsletter.compose.build import BuiltIssue
from newsletter.compose.issues import load_issue
from newsletter.config import Config
from newsletter.errors import Problem, SendRefused


def send_gate(issue_dir: Path, config: Config, *, force: bool = False) -> list[str]:
    """Refuse a draft, and an issue with `check` errors unless `force`; return those errors."""
    issue = load_issue(issue_dir)
    if issue.status == "draft":
        raise SendRefused(
            Problem(
                "is a draft; when it is finished, set 'status: ready' in its front matter "
                "(a test send with --test works for drafts)",
                issue.source,
                field="status",
                code="draft",
            )
        )
    report = run_check(issue_dir, config)
    errors = [
        f"{finding.where}: {finding.code}: {finding.message}"
        for finding in report.findings
        if finding.level is Level.ERROR
    ]
    if errors and not force:
        raise SendRefused(
            *(Problem(error, code="check-errors") for error in errors),
            Problem(
                f"{issue.slug} has {len(errors)} check error(s) and was not sent; fix them "
                "(newsletter check shows each with its fix) or send with --force",
                code="check-errors",
            ),
        )
    return errors


def needs_url_check(config: Config, transport: str) -> bool:
    """Sends that reach readers (SMTP) check the published files; the local outbox does not."""
    return config.publish.check_urls and transport == "smtp"


def url_gate(built: BuiltIssue, config: Config, timeout: float = 5.0) -> None:
    """Stop if an image or link of the email under base_url does not answer."""
    missing = unreachable(published_urls(built.html, config.base_url), timeout=timeout)
    if missing:
        raise SendRefused(
            *(
                Problem(f"{url} does not answer: {reason}", code="not-published")
                for url, reason in missing
            ),
            Problem(
                f"{len(missing)} published file(s) of {built.slug} are not at base_url; run "
                "'newsletter archive' and 'newsletter publish' first, or send with "
                "--skip-url-check",
                code="not-published",
            ),
        )
