"""Pieces every `newsletter` command shares: the common options and the error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to newsletter.toml (default: found from here up)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def reports_errors(command: F) -> F:
    """Turn a NewsletterError into one `Error:` line per problem and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NewsletterError as exc:
            console.traceback()
            for line in str(exc).splitlines() or [type(exc).__name__]:
                console.error(escape(line))
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
