"""`newsletter <command>` runs an app holding only that command: it answers exactly as the
whole app does."""

from __future__ import annotations

import pytest
from typer.main import get_command_name
from typer.testing import CliRunner

from newsletter.cli.app import app, for_command

NAMES = [
    info.name or get_command_name(info.callback.__name__)
    for info in app.registered_commands
    if info.callback
] + [str(info.name) for info in app.registered_groups]


def answers(args: list[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """What the narrowed app and the whole app say to `args`: exit code, stdout, stderr."""
    runner = CliRunner()
    results = [runner.invoke(one, args, prog_name="newsletter") for one in (for_command(args), app)]
    narrowed, whole = ((r.exit_code, r.stdout, r.stderr) for r in results)
    return narrowed, whole


def test_every_command_and_group_is_found() -> None:
    assert len(NAMES) > 15 and "build" in NAMES and "subscribers" in NAMES
    for name in NAMES:
        narrowed = for_command(["--debug", name, "--json"])
        assert narrowed is not app
        found = [*narrowed.registered_commands, *narrowed.registered_groups]
        assert len(found) == 1, name


@pytest.mark.parametrize("name", NAMES)
def test_a_command_s_help_is_the_same(name: str) -> None:
    narrowed, whole = answers([name, "--help"])
    assert narrowed == whole
    assert narrowed[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["bild", "issues/x"],  # no such command: the whole app suggests `build`
        ["build"],  # a missing argument
        ["build", "--colour"],  # no such option
        ["subscribers", "import", "--help"],
        ["subscribers", "nothing"],
    ],
)
def test_usage_errors_and_the_app_s_own_options_are_the_same(args: list[str]) -> None:
    narrowed, whole = answers(args)
    assert narrowed == whole


def test_without_a_known_name_the_whole_app_answers() -> None:
    assert for_command([]) is app
    assert for_command(["--help"]) is app
    assert for_command(["bild"]) is app
    assert len(app.registered_commands) == len(NAMES) - len(app.registered_groups)
