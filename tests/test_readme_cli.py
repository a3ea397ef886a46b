"""Every command and option of the `newsletter` CLI is documented in the README."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from newsletter.cli.app import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        path = f"{prefix}{name}"
        yield path, command
        if hasattr(command, "commands"):
            yield from _commands(command, f"{path} ")


def _undocumented() -> list[str]:
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        if f"newsletter {path}" not in README:
            missing.append(f"newsletter {path}")
        for parameter in command.params:
            opts = [name for name in getattr(parameter, "opts", []) if name.startswith("-")]
            opts += [n for n in getattr(parameter, "secondary_opts", []) if n.startswith("-")]
            if not opts or getattr(parameter, "hidden", False) or "--help" in opts:
                continue
            if not any(name in README for name in opts):
                missing.append(f"newsletter {path} {opts[0]}")
    return missing


def test_every_command_and_option_is_in_the_readme() -> None:
    missing = _undocumented()
    assert not missing, "not in README.md: " + ", ".join(missing)
