"""Every error the library raises on purpose, its stable code, and the exit code the CLI gives it.

    NewsletterError          error             exit 1: something went wrong while working
    ├── BuildError           build-failed      a stage of the pipeline failed (MJML, inlining)
    ├── WriteError           write-failed      an output folder could not be written
    ├── PublishError         publish-failed    the site could not be copied to its destination
    ├── BrowserError         browser-failed    no usable Chromium, or it failed
    ├── DatabaseError        database-failed   the database cannot be opened, written or migrated
    ├── TransportError       transport-failed  the mail transport cannot be used (connect, TLS)
    ├── MailSourceError      mail-source-failed  the inbound mailbox cannot be read
    └── InputError           invalid-input     exit 2: the user's input is wrong; fix it, run again
        ├── ConfigError      bad-config        newsletter.toml is missing, malformed or invalid
        ├── IssueError       bad-issue         an issue file is missing, malformed or invalid
        │   └── UnreadableIssueError  unreadable-issue  issue.md cannot be read at all
        ├── TemplateError    template-error    a template is missing or does not render
        ├── OutputFolderError  output-folder   the output folder holds things not ours to replace
        ├── SubscriberError  bad-subscriber    a bad address or name, an unknown subscriber...
        ├── HeaderInjectionError  header-injection  a header value holds a line break
        ├── TokenError       bad-token         a link token is malformed, forged or altered
        ├── KeyChangedError  signing-key-changed  the signing key is not the one used before
        ├── EmptySegment     empty-segment     a send names a tag no active subscriber has
        └── SendRefused      send-refused      the issue may not be sent as it is, or as asked

An error's `code` is its class's unless it carries problems: an InputError's code is that of
its first Problem, and each Problem has its own (see PROBLEM_CODES);
a runtime error may carry a more precise one (see ERROR_CODES). Codes are kebab-case and
stable: scripts (`check --json`, `--json` on any command) rely on them, never on the wording.

Exceptions that never leave the library stay private in their modules, because they are
control flow the caller never sees: the transports' per-message outcomes (DeliveryError,
Unsendable, ConnectionLost, ReplyLost: the sender records them in the ledger), the ledger's
ClaimLost (the sender skips the copy), MergeTagError and UnreadableImage (turned into an
IssueError with a place), WebhookRefused (an HTTP status), and the doctor's lookup and
parsing failures (turned into findings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

#: Every problem code, with what it means. A test checks that each code used is listed here.
PROBLEM_CODES: dict[str, str] = {
    "invalid-field": "a field's value is not allowed (the message says what is expected)",
    "unknown-field": "a field this version does not know (often misspelt)",
    "missing-field": "a required field is missing",
    "missing-alt": "an image has no alt text",
    "missing-subject": "the issue has no subject",
    "missing-preheader": "the issue has no preheader",
    "missing-postal-address": "the config has no postal address (the law asks for one)",
    "bad-link": "a link or URL is not an absolute http(s) URL, or points nowhere",
    "bad-email": "an email address is not valid",
    "bad-date": "a date is not written YYYY-MM-DD",
    "bad-rate": "a sending rate is not like 10/s, 600/m or 3600/h",
    "bad-merge-tag": "a merge tag is unknown, malformed or unclosed",
    "missing-image": "an image file is not there",
    "bad-image": "an image cannot be read, or is far too large",
    "yaml-syntax": "the front matter is not valid YAML",
    "toml-syntax": "newsletter.toml is not valid TOML",
    "not-utf8": "a text file is not UTF-8",
    "unreadable-file": "a file cannot be read (missing, a folder, no permission)",
    "file-too-large": "a file is larger than allowed",
    "no-config": "no newsletter.toml was found",
    "bad-dkim-key": "the DKIM key file is missing or unusable",
    "unknown-topic": "a topic is not configured",
    "template-error": "a template is missing or fails to render",
    "output-folder": "the output folder holds things this tool must not replace",
    "header-injection": "a value bound for a mail header holds a line break",
    "bad-token": "a link token is malformed, forged or altered",
    "signing-key-changed": "the signing key is not the one links were signed with before",
    "draft": "the issue is still a draft",
    "check-errors": "`check` found errors in the issue",
    "send-in-progress": "the issue is already being sent another way",
    "not-published": "the issue's published files are not at base_url yet",
    "opted-out": "the person unsubscribed, complained or was erased: not added back",
    "missing-password": "an SMTP username is set but its password variable is not",
    "bad-subscriber": "an address or name is unfit, or the subscriber is unknown or opted out",
    "bad-csv": "a CSV file is malformed",
    "bad-option": "a command-line option's value is not allowed",
    "bad-schedule": "a scheduled send is malformed or impossible",
    "not-found": "a thing named on the command line does not exist",
    "no-welcome": "a welcome email is asked for but none is configured",
    "welcome-not-for-the-list": "the welcome email goes to one reader at a time, never the list",
    "nothing-to-catch-up": "a catch-up of an issue that was never sent",
    "empty-segment": "a send names a tag no active subscriber has",
    "port-in-use": "a port to listen on is taken",
    "database-not-empty": "the database to copy into already holds data",
    "schema-behind": "the database's schema is older than this newsletter's: migrate it first",
    "bad-input": "other bad input (the message says what)",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, with where it is and a stable code (see PROBLEM_CODES)."""

    message: str
    path: Path | None = None
    line: int | None = None
    field: str | None = None
    code: str = dataclasses.field(default="bad-input", kw_only=True)

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path) + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, str | int | None]:
        """The problem as plain data, for JSON."""
        path = None if self.path is None else str(self.path)
        return {"code": self.code, "message": self.message, "path": path,
                "line": self.line, "field": self.field}  # fmt: skip


#: The codes of runtime errors (exit 1) beyond their classes' own, set where they are raised.
ERROR_CODES: dict[str, str] = {
    "error": "something went wrong (the message says what)",
    "invalid-input": "the input is wrong (each problem has its own code)",
    "bad-config": "newsletter.toml is wrong",
    "bad-issue": "an issue is wrong",
    "unreadable-issue": "issue.md cannot be read at all",
    "send-refused": "the send is refused as asked",
    "empty-segment": "a send names a tag no active subscriber has: nothing is sent",
    "build-failed": "a stage of the build failed",
    "write-failed": "an output folder could not be written",
    "publish-failed": "the site could not be copied to its destination",
    "browser-failed": "no usable Chromium, or it failed",
    "database-failed": "the database cannot be opened, written or migrated",
    "transport-failed": "the mail transport cannot be used",
    "smtp-unreachable": "the SMTP server cannot be reached",
    "smtp-login-refused": "the SMTP server refused the login (or the password cannot be sent)",
    "smtp-tls-failed": "TLS with the SMTP server failed",
    "smtp-no-starttls": "the SMTP server does not offer STARTTLS",
    "outbox-unwritable": "the outbox folder cannot be written",
    "mail-source-failed": "the inbound mailbox cannot be read",
    "imap-login-refused": "the IMAP server refused the login (or the password cannot be sent)",
}


class NewsletterError(Exception):
    """Base of every error the library raises on purpose; `code` may be given where raised."""

    exit_code = 1
    code = "error"

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code


class BuildError(NewsletterError):
    """A pipeline stage failed on input that validated."""

    code = "build-failed"


class WriteError(NewsletterError):
    """An output folder could not be written."""

    code = "write-failed"


class PublishError(NewsletterError):
    """The site could not be copied to its destination."""

    code = "publish-failed"


class BrowserError(NewsletterError):
    """No usable Chromium, or it failed."""

    code = "browser-failed"


class DatabaseError(NewsletterError):
    """The database file cannot be opened, written, or is not one of ours."""

    code = "database-failed"


class TransportError(NewsletterError):
    """The transport cannot be used at all (connection, login, TLS)."""

    code = "transport-failed"


class MailSourceError(NewsletterError):
    """The mail server could not be reached, refused the login, or failed a command."""

    code = "mail-source-failed"


class InputError(NewsletterError):
    """The user's input is wrong. Carries one or more located problems."""

    exit_code = 2
    code = "invalid-input"

    def __init__(self, *problems: Problem) -> None:
        self.problems = problems
        if problems:
            self.code = problems[0].code
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(InputError):
    """newsletter.toml is missing, malformed or invalid."""

    code = "bad-config"


class IssueError(InputError):
    """An issue folder or file is missing, malformed or invalid."""

    code = "bad-issue"


class UnreadableIssueError(IssueError):
    """issue.md is missing, not UTF-8, or its front matter cannot be parsed at all.

    Its fields were never read, so nothing more can be said about the issue; `check` exits 2
    for these, while other IssueErrors become findings.
    """

    code = "unreadable-issue"


class TemplateError(InputError):
    """A template is missing or fails to render."""

    code = "template-error"


class OutputFolderError(InputError):
    """The chosen output folder holds things this tool must not replace."""

    code = "output-folder"


class SubscriberError(InputError):
    """A bad address, a name unfit for a mail header, an unknown subscriber..."""

    code = "bad-subscriber"


class HeaderInjectionError(InputError):
    """A value bound for a mail header holds a line break."""

    code = "header-injection"


class TokenError(InputError):
    """A token that is malformed, forged or altered."""

    code = "bad-token"


class KeyChangedError(InputError):
    """The signing key is not the one links were signed with before."""

    code = "signing-key-changed"


class EmptySegment(InputError):
    """A send names a tag no active subscriber has: almost always a typo, so nothing is sent."""

    code = "empty-segment"


class SendRefused(InputError):
    """The issue may not go to subscribers as it is (a draft, `check` errors), or is already
    being sent another way (continue that send or force a change)."""

    code = "send-refused"


def error_data(error: NewsletterError) -> dict[str, object]:
    """An error as plain data for `--json`: its code, message, exit code and problems."""
    problems = getattr(error, "problems", ())
    return {"error": {"code": error.code, "message": str(error), "exit_code": error.exit_code,
                      "problems": [p.as_dict() for p in problems]}}  # fmt: skip
