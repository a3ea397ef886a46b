"""`newsletter init`: start a newsletter in a new folder, anywhere."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import console
from newsletter.cli.common import reports_errors
from newsletter.errors import InputError, Problem

_QUESTIONS = {
    "name": "Name of the newsletter",
    "sender": "Sender's email address",
    "base_url": "Where its web pages will be (base URL, https://...)",
    "postal_address": "Postal address for the footer (required by anti-spam laws)",
}


def _ask(values: dict[str, str | None]) -> dict[str, str]:
    missing = [key for key, value in values.items() if not value]
    if missing and not console.interactive():
        flags = ", ".join("--" + key.replace("_", "-") for key in missing)
        raise InputError(Problem(f"no terminal to ask on; give {flags}", code="bad-option"))
    return {key: value or typer.prompt(_QUESTIONS[key]) for key, value in values.items()}


@reports_errors
def init(
    folder: Annotated[Path, typer.Argument(help="Folder of the new project.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="The newsletter's name.")] = None,
    sender: Annotated[str | None, typer.Option(help="The From address.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Where the archive is published.")] = None,
    postal_address: Annotated[str | None, typer.Option(help="Postal address for footers.")] = None,
    language: Annotated[str, typer.Option(help="Language of the issues (en, fr...).")] = "en",
    timezone: Annotated[str, typer.Option(help="Time zone of send --at times.")] = "UTC",
) -> None:
    """Create a newsletter project: newsletter.toml, a first issue, templates/, assets/."""
    from newsletter.publish.project import Answers, init_project

    answers = _ask(
        {"name": name, "sender": sender, "base_url": base_url, "postal_address": postal_address}
    )
    config, first = init_project(
        folder, Answers(**answers, language=language, timezone=timezone), dt.date.today()
    )
    where = folder.resolve()
    console.out.print(f"Created the newsletter '{config.name}' in {where}")
    console.out.print(f"  settings:     {where / 'newsletter.toml'}  (every setting is explained)")
    console.out.print(f"  first issue:  {first / 'issue.md'}  (a draft)")
    console.out.print("Next: cd into the folder, write the issue, then: newsletter check ISSUE")
