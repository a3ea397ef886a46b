"""Terminal output: results on stdout, diagnostics on stderr (both through rich)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# `--debug` (or NEWSLETTER_DEBUG=1) shows the traceback that error reporting otherwise hides.
debug = os.environ.get("NEWSLETTER_DEBUG", "") not in ("", "0")


def traceback() -> None:
    """With --debug, print the exception being handled, with its traceback, on stderr."""
    if debug:
        err.print_exception()


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout, nothing else, for scripts."""
    print(json.dumps(data, indent=2, default=str))


def error(message: str) -> None:
    """An error line on stderr."""
    err.print(f"[bold red]Error:[/] {message}", markup=True, emoji=False)


def warning(message: str) -> None:
    """A warning line on stderr."""
    err.print(f"[yellow]Warning:[/] {message}", markup=True, emoji=False)


def interactive() -> bool:
    """True when someone is at a terminal to answer questions."""
    return sys.stdin.isatty()
