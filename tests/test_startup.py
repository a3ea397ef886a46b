"""Each command imports only what it uses: `--version` and `--help` load no heavy library.

The command runs in a fresh interpreter (as the `newsletter` script would) and reports the
modules it loaded; timings are left to benchmarks/build.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: What `newsletter --version` must not pay for.
HEAVY = (
    "playwright", "uvicorn", "starlette", "premailer", "pydantic", "dkim", "cryptography",
    "lxml", "mjml", "PIL", "email_validator", "jinja2", "yaml", "markdown_it", "feedgen",
)  # fmt: skip
#: Runs the `newsletter` entry point with the given arguments, then prints the loaded modules.
RUN = """\
import json, sys
{setup}
from newsletter.cli.script import main
sys.argv = ["newsletter", *{args!r}]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def run(args: list[str], cwd: Path = REPO, setup: str = "") -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN.format(args=args, setup=setup)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), done.stdout + done.stderr


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


#: Typer itself loads these for help (rich's Markdown) and for a subcommand's options (pydantic).
TYPER_OWN = {"--help": ("markdown_it",), "subcommand": ("markdown_it", "pydantic")}


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["--version"], ()),
        (["--help"], TYPER_OWN["--help"]),
        (["subscribers", "--help"], TYPER_OWN["subcommand"]),
        (["send", "--help"], TYPER_OWN["subcommand"]),
        (["check", "--help"], TYPER_OWN["subcommand"]),
    ],
)
def test_version_and_help_load_no_heavy_library(args: list[str], allowed: tuple[str]) -> None:
    code, modules, output = run(args)
    assert code == 0, output
    assert loaded(modules, tuple(name for name in HEAVY if name not in allowed)) == []


def test_build_loads_the_pipeline_but_no_server_browser_or_signing(project: Path) -> None:
    code, modules, output = run(
        ["build", "issues/2026-11-24-france-welcomes-chechen-refugees"], cwd=project
    )
    assert code == 0, output  # a first build: the HTML cache of a later one is empty
    assert loaded(modules, ("premailer", "mjml", "jinja2")) == ["premailer", "mjml", "jinja2"]
    unused = ("playwright", "uvicorn", "starlette", "dkim", "cryptography", "feedgen")
    assert loaded(modules, unused) == []
    assert "requests.sessions" not in modules  # premailer's requests is never used


def test_a_browser_command_without_the_extra_names_it(project: Path) -> None:
    hide = "sys.modules['playwright'] = sys.modules['playwright.sync_api'] = None"
    example = "issues/2026-11-24-france-welcomes-chechen-refugees"
    done = subprocess.run(
        [sys.executable, "-c", RUN.format(args=["screenshot", example], setup=hide)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert "pip install 'newsletter[browser]'" in errors[0]
    assert json.loads(done.stdout.splitlines()[-1])["code"] == 1


def test_a_second_build_of_the_same_issue_takes_its_html_from_the_cache(project: Path) -> None:
    args = ["build", "issues/2026-11-24-france-welcomes-chechen-refugees", "--out", "first"]
    assert run(args, cwd=project)[0] == 0
    code, modules, output = run([*args[:-1], "second"], cwd=project)
    assert code == 0, output
    assert loaded(modules, ("premailer", "mjml", "cssutils", "lxml")) == []
    for name in ("index.html", "index.txt", "index.mjml", "preview.html"):
        assert (project / "second" / name).read_bytes() == (project / "first" / name).read_bytes()


def test_an_edited_issue_is_inlined_without_cssutils_parsing_its_css_again(
    project: Path,
) -> None:
    """After one build, an edit changes the MJML (no HTML cache entry), but the CSS texts are
    those parsed before: the parse memo answers and cssutils is never imported."""
    example = project / "issues" / "2026-11-24-france-welcomes-chechen-refugees"
    args = ["build", str(example), "--out", "first"]
    assert run(args, cwd=project)[0] == 0
    issue = example / "issue.md"
    title = "France opens its doors to gay men fleeing Chechnya"
    issue.write_text(issue.read_text(encoding="utf-8").replace(title, "Edited"), encoding="utf-8")
    code, modules, output = run([*args[:-1], "second"], cwd=project)
    assert code == 0, output
    assert loaded(modules, ("premailer", "mjml")) == ["premailer", "mjml"]
    assert "cssutils.css" not in modules  # only the stand-in for premailer's `import cssutils`
    assert "PIL" not in modules  # the images' outcomes are recorded in the image cache
    first = (project / "first" / "index.html").read_text(encoding="utf-8")
    second = (project / "second" / "index.html").read_text(encoding="utf-8")
    assert second == first.replace(title, "Edited")


def test_build_imports_its_own_command_module_and_not_rich(project: Path) -> None:
    code, modules, output = run(
        ["build", "issues/2026-11-24-france-welcomes-chechen-refugees"], cwd=project
    )
    assert code == 0, output
    commands = {name for name in modules if name.startswith("newsletter.cli.")}
    assert commands <= {
        "newsletter.cli.app", "newsletter.cli.build", "newsletter.cli.common",
        "newsletter.cli.console", "newsletter.cli.script",
    }  # fmt: skip
    assert "rich" not in modules
    assert "sqlite3" not in modules or "coverage" in modules  # coverage keeps its data in SQLite


COLLECTOR = """\
import gc, sys
import typer.core
from newsletter.cli.script import main
states = set()
parse = typer.core.build_runtime_param
def spy(*args, **kwargs):  # Typer turning an option's value into its type (pydantic)
    states.add(gc.isenabled())
    return parse(*args, **kwargs)
typer.core.build_runtime_param = spy
sys.argv = ["newsletter", *{args!r}]
try:
    main()
except SystemExit:
    pass
print(sorted(states))
"""


@pytest.mark.parametrize(
    ("args", "collector"),
    [(["build", "issues/2026-11-24-france-welcomes-chechen-refugees"], False), (["status"], True)],
)
def test_the_collector_is_off_while_a_build_parses_and_on_for_other_commands(
    project: Path, args: list[str], collector: bool
) -> None:
    """The script starts with it off; a short command (`without_collector`) keeps it so."""
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR.format(args=args)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == f"[{collector}]", done.stderr
