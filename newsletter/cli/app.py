"""The `newsletter` command: parses options, calls the library, prints. Nothing else.

Start-up stays fast because nothing is imported before it is needed: `COMMANDS` and `GROUPS`
say where each command lives, and `newsletter <command>` imports that command's module alone
(`for_command`); each command module imports only Typer and the shared pieces at its top and
the library modules it uses inside its function. So `newsletter --version` or `--help` never
loads the build pipeline, the web server or the browser automation (tests/test_startup.py
keeps it so). `app`, the whole command line, is made on first use (tests and `--help` use it).

Every command is wrapped in `common.reports_errors`, the one place where a NewsletterError
becomes `Error: ...` on stderr and an exit code (2 for bad input, 1 for a failure while
working); `main` turns anything unexpected into one line and exit 1, never a traceback.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Collection
from functools import cache
from typing import Annotated, Any

import typer

from newsletter import __version__
from newsletter.cli import console
from newsletter.lazymodules import import_on_first_use

#: Every command in the order `--help` lists them, and its function ("module:name").
COMMANDS = {
    "init": "newsletter.cli.init:init",
    "new": "newsletter.cli.build:new",
    "build": "newsletter.cli.build:build",
    "worker": "newsletter.cli.worker:worker",
    "publish": "newsletter.cli.publish:publish",
    "send": "newsletter.cli.send:send",
    "status": "newsletter.cli.send:status",
    "unsubscribe": "newsletter.cli.send:unsubscribe",
    "check": "newsletter.cli.check:check",
    "serve": "newsletter.cli.serve:serve",
    "archive": "newsletter.cli.archive:archive",
    "embed": "newsletter.cli.embed:embed",
    "preview": "newsletter.cli.preview:preview",
    "screenshot": "newsletter.cli.preview:screenshot",
    "report": "newsletter.cli.report:report",
    "doctor": "newsletter.cli.doctor:doctor",
}
#: Every command group (a Typer app of its own) and where it is.
GROUPS = {
    "subscribers": "newsletter.cli.subscribers:subscribers_app",
    "inbound": "newsletter.cli.inbound:inbound_app",
    "schedule": "newsletter.cli.later:schedule_app",
    "db": "newsletter.cli.db:db_app",
}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _version(value: bool) -> None:
    if value:
        console.out.print(f"newsletter {__version__}")
        raise typer.Exit()


def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind any error.")
    ] = False,
) -> None:
    """Build newsletter issues into responsive HTML email and send them."""
    console.debug = debug or console.debug


def make_app(names: Collection[str] | None = None) -> typer.Typer:
    """The command line with the named commands and groups (all of them without `names`)."""
    made = typer.Typer(
        help="Build newsletter issues into responsive HTML email and send them.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    made.callback()(main_options)
    for name, target in COMMANDS.items():
        if names is None or name in names:
            made.command(name)(_load(target))
    for name, target in GROUPS.items():
        if names is None or name in names:
            made.add_typer(_load(target), name=name)
    return made


@cache
def _whole_app() -> typer.Typer:
    return make_app()


def __getattr__(name: str) -> typer.Typer:
    """`app`: the whole command line, made (and every command module imported) on first use."""
    if name == "app":
        return _whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_name(args: list[str]) -> str | None:
    """The command or group that `args` name: the app's own options (--debug, --version) take
    no value, so it is the first argument not starting with '-'."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def for_command(args: list[str]) -> typer.Typer:
    """The app holding only the command or command group that `args` name, else the whole app.

    Only that command's module is imported, and Typer turns only its function into a Click
    command (reading every function's signature and type hints costs ~20 ms). Without a known
    name, the whole app answers (its help, or "No such command" with a suggestion).
    """
    name = _command_name(args)
    if name in COMMANDS or name in GROUPS:
        return make_app({name})
    return _whole_app()


def _collector_stays_off(args: list[str]) -> bool:
    """Whether the command that `args` name runs with the collector off (a short command:
    `common.without_collector`)."""
    name = _command_name(args)
    return name in COMMANDS and getattr(_load(COMMANDS[name]), "collector_off", False)


def main() -> None:
    """Run the command line; unexpected errors become one line, exit 1.

    The `newsletter` script (`newsletter.cli.script`) starts with the cyclic garbage collector
    off, since importing makes many long-lived objects and no cyclic garbage. A short command
    keeps it off (`common.without_collector`: Typer's parsing of its options imports pydantic
    too); for any other, the objects made so far are frozen (never examined again) and the
    collector is back on before Typer runs it.
    """
    # pydantic looks for plugins through every installed package's metadata (~40 ms); the
    # command has none to offer, so it is told not to look unless the user says otherwise,
    # and the module it would look with is only imported if something uses it (~10 ms).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    import_on_first_use("importlib.metadata", functions=("entry_points",))
    try:
        command = for_command(sys.argv[1:])
        if not _collector_stays_off(sys.argv[1:]):
            gc.freeze()
            gc.enable()
        command()
    except Exception as exc:  # a bug of ours: say so in one line, never a traceback
        console.traceback()
        console.error(f"unexpected {type(exc).__name__}: {console.escape(str(exc))}")
        console.err.print("This is a bug in newsletter; please report it with the command you ran.")
        raise SystemExit(1) from None
