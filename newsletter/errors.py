"""Every error the library raises on purpose, and the exit code the CLI gives it.

    NewsletterError                 exit 1: something went wrong while working
    ├── BuildError                  a stage of the pipeline failed (MJML, inlining)
    └── InputError                  exit 2: the user's input is wrong; fix it and run again
        ├── ConfigError             newsletter.toml is missing, malformed or invalid
        ├── IssueError              an issue file is missing, malformed or invalid
        │   └── UnreadableIssueError    issue.md cannot be read at all (missing, YAML syntax)
        └── TemplateError           a template is missing or does not render

Each error renders itself in one line: where (file, line, field), what, and what to do.
The CLI turns them into `Error: ...` on stderr in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, with where it is."""

    message: str
    path: Path | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path) + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message


class NewsletterError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1


class BuildError(NewsletterError):
    """A pipeline stage failed on input that validated."""


class InputError(NewsletterError):
    """The user's input is wrong. Carries one or more located problems."""

    exit_code = 2

    def __init__(self, *problems: Problem) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(InputError):
    """newsletter.toml is missing, malformed or invalid."""


class IssueError(InputError):
    """An issue folder or file is missing, malformed or invalid."""


class UnreadableIssueError(IssueError):
    """issue.md is missing, not UTF-8, or its front matter cannot be parsed at all.

    Its fields were never read, so nothing more can be said about the issue; `check` exits 2
    for these, while other IssueErrors become findings.
    """


class TemplateError(InputError):
    """A template is missing or fails to render."""
