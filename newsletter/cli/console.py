"""Terminal output: results on stdout, diagnostics on stderr (through rich).

`out` and `err`, rich's consoles, are made on first use, so a command that prints only plain
lines (`plain`) never imports rich (about 20 ms of start-up).
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console


@cache
def _console(name: str) -> Console:
    from rich.console import Console

    return Console(stderr=name == "err", highlight=False, soft_wrap=True)


def __getattr__(name: str) -> Console:
    """`out` (stdout) and `err` (stderr), made on first use."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _console(name)


# `--debug` (or NEWSLETTER_DEBUG=1) shows the traceback that error reporting otherwise hides.
debug = os.environ.get("NEWSLETTER_DEBUG", "") not in ("", "0")


def traceback() -> None:
    """With --debug, print the exception being handled, with its traceback, on stderr."""
    if debug:
        _console("err").print_exception()


def escape(text: str) -> str:
    """`text` with rich's markup characters escaped, to print it as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def plain(line: str) -> None:
    """A line on stdout, as it is (no markup, no wrapping)."""
    print(line)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout, nothing else, for scripts."""
    print(json.dumps(data, indent=2, default=str))


def error(message: str) -> None:
    """An error line on stderr."""
    _console("err").print(f"[bold red]Error:[/] {message}", markup=True, emoji=False)


def warning(message: str) -> None:
    """A warning line on stderr."""
    _console("err").print(f"[yellow]Warning:[/] {message}", markup=True, emoji=False)


def interactive() -> bool:
    """True when someone is at a terminal to answer questions."""
    return sys.stdin.isatty()
