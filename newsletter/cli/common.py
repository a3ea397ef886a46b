"""Pieces every `newsletter` command shares: the common options and the error reporting."""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from newsletter.cli import console
from newsletter.errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to newsletter.toml (default: found from here up)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def reports_errors(command: F) -> F:
    """Turn a NewsletterError into one `Error:` line per problem and its exit code (with --json,
    also the error as JSON on stdout, with its code); a database that cannot be written is
    one too. With --debug, the traceback first."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NewsletterError as exc:
            _report(exc, bool(kwargs.get("json") or kwargs.get("as_json")))
        except Exception as exc:  # a database that is read-only, full, locked...
            # sqlite3 is not imported here for this (~1 ms of every command's start-up): if no
            # code has imported it, the error cannot be one of its errors.
            sqlite3 = sys.modules.get("sqlite3")
            if sqlite3 is None or not isinstance(exc, sqlite3.Error):
                raise
            from newsletter.deliver.db import failure

            _report(failure(exc, "the database"), bool(kwargs.get("json") or kwargs.get("as_json")))

    return wrapper  # type: ignore[return-value]


def without_collector(command: F) -> F:
    """Run a short command of bounded work (one build) with the cyclic garbage collector off.

    Importing the pipeline creates tens of thousands of objects that live until the end, and
    the collector would walk the growing heap again and again while it does (some 20 ms of a
    build's CPU time) to find no garbage; the process ends soon after anyway. The mark
    `collector_off` tells `app.main` to leave the collector off from the start.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    wrapper.collector_off = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _report(error: NewsletterError, as_json: bool) -> NoReturn:
    from newsletter.errors import error_data

    console.traceback()
    if as_json:
        console.print_json(error_data(error))
    for line in str(error).splitlines() or [type(error).__name__]:
        console.error(console.escape(line))
    raise typer.Exit(error.exit_code)
