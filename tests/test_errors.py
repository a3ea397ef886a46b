"""The error tree: stable codes set where problems are raised, no bad input reported as a bug,
no secret in an error, and --debug showing the traceback on every command's error path."""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from smtp_sink import Sink, free_port
from typer.testing import CliRunner, Result

from newsletter import errors
from newsletter.cli import console
from newsletter.cli.app import app
from newsletter.cli.common import reports_errors
from newsletter.compose.issues import parse_issue
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.errors import ERROR_CODES, PROBLEM_CODES, IssueError

PACKAGE = Path(errors.__file__).parent
KEBAB = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
CODES = PROBLEM_CODES | ERROR_CODES
WriteIssue = Callable[..., Path]


@functools.cache
def _trees() -> list[tuple[Path, ast.Module]]:
    """Every module of the package, parsed (once)."""
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


# --- codes -------------------------------------------------------------------------------------


def test_every_problem_is_raised_with_an_explicit_code() -> None:
    missing = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _name(node.func) == "Problem"
        and not any(k.arg == "code" for k in node.keywords)
    ]
    assert missing == []


def test_every_code_is_kebab_case_and_documented() -> None:
    used: dict[str, str] = {}
    for path, tree in _trees():
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        used[str(keyword.value.value)] = where
                if _name(node.func) == "_invalid" and isinstance(node.args[0], ast.Constant):
                    used[str(node.args[0].value)] = where  # pydantic validators' codes
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.Assign)
                        and [_name(t) for t in item.targets] == ["code"]
                        and isinstance(item.value, ast.Constant)
                    ):
                        used[str(item.value.value)] = where
    assert len(used) > 40
    assert [f"{c} ({w})" for c, w in used.items() if not KEBAB.fullmatch(c)] == []
    assert [f"{c} ({w})" for c, w in used.items() if c not in CODES] == []
    assert all(KEBAB.fullmatch(code) and text for code, text in CODES.items())


def test_error_classes_of_the_library_surface_live_in_errors_py() -> None:
    public = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.NewsletterError)
    }
    assert len(public) >= 19
    for cls in (getattr(errors, name) for name in public):
        assert KEBAB.fullmatch(cls.code) and cls.code in CODES, cls
        assert cls.__doc__ and cls.__name__ in (errors.__doc__ or "")
    private_on_purpose = {"ClaimLost"}  # control flow inside the sender, see errors.py
    elsewhere = [
        f"{path.relative_to(PACKAGE)}: {node.name}"
        for path, tree in _trees()
        if path.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(_name(base) in public for base in node.bases)
        and not node.name.startswith("_")
        and node.name not in private_on_purpose
    ]
    assert elsewhere == []
    duplicates = [
        node.name
        for path, tree in _trees()
        if path.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name in public
    ]
    assert duplicates == []


def test_problems_carry_the_code_of_where_they_were_raised() -> None:
    text = """\
---
subject: ""
date: 2026-02-30
lead:
  title: "Hi {{ nobody }}"
  image:
    src: images/a.png
    alt: ""
  url: "ftp://example.org"
  bylin: me
---
Body.
"""
    with pytest.raises(IssueError) as caught:
        parse_issue(text, Path("/nowhere/issue.md"))
    codes = {p.field: p.code for p in caught.value.problems}
    assert codes == {
        "subject": "missing-subject",
        "preheader": "missing-preheader",
        "date": "bad-date",
        "lead.url": "bad-link",
        "lead.bylin": "unknown-field",
    }
    assert caught.value.code == caught.value.problems[0].code


def test_check_json_reports_the_raised_codes(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(
        front='subject: "S"\npreheader: "P"\ndate: 2026-11-24\nlead:\n  title: "T"\n'
        '  url: "example.org/x"\n'
    )
    result = runner.invoke(app, ["check", str(folder), "--json"])
    codes = [finding["code"] for finding in json.loads(result.stdout)["findings"]]
    assert "bad-link" in codes, result.stdout


def test_json_errors_carry_their_code(runner: CliRunner, project: Path) -> None:
    SubscriberStore.open(project / "newsletter.db")
    result = runner.invoke(app, ["subscribers", "show", "nobody@example.org", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "not-found" and error["exit_code"] == 2
    assert error["problems"][0]["code"] == "not-found"
    assert result.stderr.startswith("Error: nobody@example.org is not on the list")


# --- bad input is never a bug --------------------------------------------------------------


def _fails(result: Result, code: int, *expected: str) -> str:
    text = result.stdout + result.stderr
    assert result.exit_code == code, text
    assert "bug" not in text and "Traceback" not in text and "unexpected" not in text, text
    assert result.stderr.startswith("Error: "), text
    for part in expected:
        assert part in result.stderr, text
    return str(result.stderr)


def test_a_brace_in_a_title_is_a_located_merge_tag_error(
    runner: CliRunner, write_issue: WriteIssue
) -> None:
    folder = write_issue(
        front='subject: "S"\npreheader: "P"\ndate: 2026-11-24\nlead:\n  title: "Hello {{ world"\n'
    )
    result = runner.invoke(app, ["build", str(folder)])
    _fails(result, 2, f"{folder / 'issue.md'}:6: lead.title: unclosed merge tag")


@pytest.mark.parametrize(
    "date", ["2026-13-45", "2026-02-30", "2026-11-24 10:00:00", "[1, 2]", "tomorrow"]
)
def test_a_malformed_date_is_located(runner: CliRunner, write_issue: WriteIssue, date: str) -> None:
    folder = write_issue(front=f'subject: "S"\npreheader: "P"\ndate: {date}\nlead:\n  title: "T"\n')
    _fails(runner.invoke(app, ["build", str(folder)]), 2, "issue.md:4: date: ", "YYYY-MM-DD")


def test_a_config_that_is_not_utf8(runner: CliRunner, example: Path, project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_bytes(config.read_bytes() + b"\n# caf\xe9 \xff\n")
    lines = config.read_bytes().count(b"\n")
    result = runner.invoke(app, ["build", str(example)])
    _fails(result, 2, f"newsletter.toml:{lines}: is not UTF-8 text")


@pytest.mark.parametrize("rate", ["nan/s", "inf/s", "-1/s"])
def test_a_rate_that_is_not_a_number(
    runner: CliRunner, example: Path, project: Path, rate: str
) -> None:
    result = runner.invoke(app, ["send", str(example), "--yes", "--rate", rate])
    _fails(result, 2, "--rate: ", "is not a rate")
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text()
        + f'\n[[smtp]]\nhost = "127.0.0.1"\nport = {free_port()}\nrate = "{rate}"\n'
    )
    _fails(runner.invoke(app, ["build", str(example)]), 2, "smtp.0.rate: ", "is not a rate")


def _write_png_header(path: Path, width: int, height: int) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.mark.parametrize("size", [(100_000, 100_000), (1, 60_000), (2**31 - 1, 1), (0, 0)])
def test_an_image_with_absurd_dimensions(
    runner: CliRunner, example: Path, size: tuple[int, int]
) -> None:
    _write_png_header(example / "images" / "hero.png", *size)
    _fails(runner.invoke(app, ["build", str(example)]), 2, "lead.image.src: 'hero.png' is")


def test_other_bad_inputs_found_by_trying(
    runner: CliRunner, project: Path, write_issue: WriteIssue, tmp_path: Path
) -> None:
    empty = write_issue(slug="empty")
    (empty / "issue.md").write_text("")
    _fails(runner.invoke(app, ["build", str(empty)]), 2, "issue.md:1: must start with")
    folder = project / "issues" / "folder"
    (folder / "issue.md").mkdir(parents=True)
    _fails(runner.invoke(app, ["build", str(folder)]), 2, "no issue.md here")
    missing = tmp_path / "nowhere" / "newsletter.toml"
    result = runner.invoke(app, ["build", str(empty), "--config", str(missing)])
    _fails(result, 2, f"{missing}: cannot read it")
    _fails(runner.invoke(app, ["build", str(empty), "--config", str(tmp_path)]), 2, "cannot read")
    binary = tmp_path / "people.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(app, ["subscribers", "import", str(binary)])
    _fails(result, 2, "people.csv:", ": is not UTF-8 text")


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """Make `path` unwritable even for root (chattr +i); skip where that is not possible."""
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with it)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_database_is_a_runtime_error_with_its_cause(
    runner: CliRunner, project: Path
) -> None:
    database = project / "newsletter.db"
    SubscriberStore.open(database).add("reader@example.org")
    with _immutable(database):
        result = runner.invoke(app, ["subscribers", "add", "other@example.org"])
        _fails(result, 1, "it is read-only; make the file and its folder writable")
        listed = runner.invoke(app, ["subscribers", "list", "--json"])
    assert listed.exit_code == 0 and "reader@example.org" in listed.stdout


# --- secrets ---------------------------------------------------------------------------------


class _AuthController(Controller):
    def factory(self) -> SMTP:
        return SMTP(
            self.handler,
            authenticator=_check_password,
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN"],
            hostname="sink.test",
        )


def _check_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
) -> AuthResult:
    good = isinstance(data, LoginPassword) and data.password == b"right-password"
    return AuthResult(success=good, handled=False)


@contextlib.contextmanager
def _auth_sink(sink: Sink) -> Iterator[int]:
    port = free_port()
    controller = _AuthController(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("password", "ok"),
    [("right-password", True), ("pässwörd-€-secret", False), ("wrong-password", False)],
)
def test_the_smtp_password_is_never_echoed(
    runner: CliRunner,
    example: Path,
    project: Path,
    smtp_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    ok: bool,
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("reader@example.org")
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", password)
    monkeypatch.setattr(console, "debug", False)
    sink = Sink()
    with _auth_sink(sink) as port:
        config = smtp_project(port)
        config.write_text(config.read_text().replace("timeout = 5", 'timeout = 5\nusername = "u"'))
        result = runner.invoke(app, ["send", str(example), "--yes", "--json"])
    text = result.stdout + result.stderr
    if ok:
        assert result.exit_code == 0 and sink.count == 1, text
        return
    assert result.exit_code == 1 and sink.count == 0, text
    assert "bug" not in text and "Traceback" not in text
    assert "$NEWSLETTER_SMTP_PASSWORD" in result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "smtp-login-refused"
    for secret_part in {*re.findall(r"[^\x00-\x7f]", password), password, "position"}:
        assert secret_part not in text
    for word in re.findall(r"\w{4,}", password):
        assert word not in text


# --- --debug ---------------------------------------------------------------------------------


def _commands(group: typer.Typer) -> Iterator[Callable[..., object]]:
    for command in group.registered_commands:
        assert command.callback is not None
        yield command.callback
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        yield from _commands(sub.typer_instance)


def test_every_command_reports_errors_through_one_place() -> None:
    commands = list(_commands(app))
    assert len(commands) > 30
    wrapper = reports_errors(print).__code__
    unwrapped = [c.__name__ for c in commands if getattr(c, "__code__", None) is not wrapper]
    assert unwrapped == []


def _debug_shows_the_traceback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, name: str
) -> None:
    monkeypatch.setattr(console, "debug", False)
    plain = runner.invoke(app, args)
    assert plain.exit_code == code, plain.stderr
    assert "Traceback" not in plain.stderr and plain.stderr.startswith("Error: ")
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == code, debug.stderr
    assert "Traceback" in debug.stderr and name in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip().splitlines()[-1]


def test_debug_shows_the_traceback_of_an_issue_error(
    runner: CliRunner, write_issue: WriteIssue, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_issue(front='subject: "S"\n')
    _debug_shows_the_traceback(runner, monkeypatch, ["build", str(folder)], 2, "IssueError")


def test_debug_shows_the_traceback_of_a_config_error(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "newsletter.toml").write_text("name = [\n")
    args = ["subscribers", "list"]
    _debug_shows_the_traceback(runner, monkeypatch, args, 2, "ConfigError")


def test_debug_shows_the_traceback_of_a_subscriber_error(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["subscribers", "add", "not an address"]
    _debug_shows_the_traceback(runner, monkeypatch, args, 2, "SubscriberError")


def test_debug_shows_the_traceback_of_a_transport_error(
    runner: CliRunner,
    example: Path,
    project: Path,
    smtp_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("reader@example.org")
    smtp_project(free_port())
    args = ["send", str(example), "--yes"]
    _debug_shows_the_traceback(runner, monkeypatch, args, 1, "TransportError")


def test_debug_shows_the_traceback_of_a_database_error(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "newsletter.db").mkdir()
    _debug_shows_the_traceback(runner, monkeypatch, ["subscribers", "list"], 1, "DatabaseError")
