"""Safety limits: output folders, bounded input parsing, config checked up front, private files."""

from __future__ import annotations

import resource
import stat
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import dkim
import nacl.encoding
import nacl.signing
import pytest
from conftest import MINIMAL_FRONT
from smtp_sink import Sink, running_sink
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.publish.writer import MARKER


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- output folders never delete what they did not write ---------------------------------


@pytest.mark.parametrize("where", [".", "issue", "issues", "..", "assets"])
def test_build_refuses_to_replace_the_project_or_an_issue(
    runner: CliRunner, project: Path, example: Path, where: str
) -> None:
    out = example if where == "issue" else project / where
    before = tree(project)
    result = runner.invoke(app, ["build", str(example), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "--out" in result.stderr
    assert tree(project) == before


def test_build_replaces_its_own_output(runner: CliRunner, project: Path, example: Path) -> None:
    out = project / "elsewhere" / "b"
    for _ in range(2):
        result = runner.invoke(app, ["build", str(example), "--out", str(out)])
        assert result.exit_code == 0, result.stderr
    assert (out / MARKER).is_file() and (out / "index.html").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]  # nothing left beside it


def test_archive_refuses_a_folder_with_other_files(runner: CliRunner, project: Path) -> None:
    site = project / "mine"
    site.mkdir()
    (site / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["archive", "--out", str(site)])
    assert result.exit_code == 2
    assert "did not write" in result.stderr and result.stderr.count("\n") == 1
    assert tree(site) == {"notes.txt": b"keep me"}
    empty = project / "empty"
    empty.mkdir()
    for _ in range(2):  # an empty folder, then its own output: replaced
        assert runner.invoke(app, ["archive", "--out", str(empty)]).exit_code == 0
    assert (empty / "index.html").is_file()


def test_web_site_setting_pointing_at_the_project_is_refused(
    runner: CliRunner, project: Path
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[web]\nsite = "."\n')
    before = tree(project)
    result = runner.invoke(app, ["archive"])
    assert result.exit_code == 2 and "must never be replaced" in result.stderr
    assert tree(project) == before


# --- private files ---------------------------------------------------------------------------


def test_database_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "newsletter.db"
    connect(path).execute("CREATE TABLE t (x)")
    for file in [path, *tmp_path.glob("data/newsletter.db-*")]:
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file


# --- bounded input parsing --------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
MEMORY_LIMIT = 1 << 30  # bytes of address space: the bomb unrolled would need many gigabytes


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_yaml_alias_bomb_is_refused_quickly_in_bounded_memory(
    project: Path, write_issue: Callable[..., Path]
) -> None:
    folder = write_issue(BILLION_LAUGHS, body="")
    assert len((folder / "issue.md").read_bytes()) < 400
    timing = (
        "import sys, time; from newsletter.compose.issues import load_issue\n"
        "start = time.perf_counter()\n"
        "try:\n    load_issue(__import__('pathlib').Path(sys.argv[1]))\n"
        "except Exception as exc:\n    print(type(exc).__name__, time.perf_counter() - start)\n"
    )
    for command in (
        [sys.executable, "-c", timing, str(folder)],
        [sys.executable, "-m", "newsletter", "build", str(folder)],
    ):
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory
        )
        if "-c" in command:
            kind, seconds = done.stdout.split()
            assert kind == "UnreadableIssueError" and float(seconds) < 1.0, done.stderr
        else:
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip().splitlines() == [
                f"Error: {folder / 'issue.md'}:3: YAML aliases (*name) are not allowed here; "
                "write the value out"
            ]


def test_an_issue_file_over_the_size_limit_is_refused(
    runner: CliRunner, project: Path, write_issue: Callable[..., Path]
) -> None:
    folder = write_issue(body="word " * 210_000)
    result = runner.invoke(app, ["build", str(folder)])
    assert result.exit_code == 2
    assert "issue.md: is larger than 1 MB" in result.stderr


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims this size (Pillow reads only the header to measure it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height", "says"),
    [
        (100_000, 100_000, "decompression bomb"),
        (12_000, 10, "12,000 x 10 pixels"),
        (9_000, 9_000, "9,000 x 9,000 pixels"),
    ],
)
def test_absurd_image_dimensions_are_a_located_input_error(
    runner: CliRunner, write_issue: Callable[..., Path], width: int, height: int, says: str
) -> None:
    front = MINIMAL_FRONT + '  image:\n    src: "images/big.png"\n    alt: "big"\n'
    folder = write_issue(front)
    (folder / "images" / "big.png").write_bytes(_png_header(width, height))
    result = runner.invoke(app, ["build", str(folder)])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"Error: {folder / 'issue.md'}:")
    assert says in result.stderr and "lead.image" in result.stderr
    assert "bug" not in result.stderr


def test_too_many_teaser_cards_is_a_clear_error(
    runner: CliRunner, write_issue: Callable[..., Path]
) -> None:
    card = '  - {label: "L", title: "T", summary: "S", url: "https://example.org/"}\n'
    folder = write_issue(MINIMAL_FRONT + "teasers:\n" + card * 25)
    result = runner.invoke(app, ["build", str(folder)])
    assert result.exit_code == 2
    assert "teasers: 25 teaser cards; an issue may have at most 20" in result.stderr


# --- configuration checked before anything is sent --------------------------------------------

SMTP_RELAY = '\n[[smtp]]\nname = "sink"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'


def _with_dkim(project: Path, key: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + f'\n[dkim]\nselector = "nl"\nkey_file = "{key}"\n')


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"-----BEGIN RSA PRIVATE KEY-----\nnot base64 at all\n-----END RSA PRIVATE KEY-----\n",
         "is not a DKIM private key"),
        (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ user@host\n", "is not a DKIM private key"),
        (None, "cannot read"),
    ],
)  # fmt: skip
def test_a_broken_dkim_key_stops_send_and_check_before_anything_is_sent(
    runner: CliRunner,
    example: Path,
    project: Path,
    tmp_path: Path,
    content: bytes | None,
    says: str,
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("reader@example.com")
    key = tmp_path / "keys" / "dkim.key"  # outside the project
    if content is not None:
        key.parent.mkdir()
        key.write_bytes(content)
    _with_dkim(project, key)
    sink = Sink()
    with running_sink(sink) as port:
        config = project / "newsletter.toml"
        config.write_text(config.read_text() + SMTP_RELAY.format(port=port))
        for command in (
            ["send", str(example), "--yes", "--transport", "smtp"],
            ["check", str(example)],
        ):
            result = runner.invoke(app, command)
            assert result.exit_code == 2, result.output
            assert result.stderr.count("\n") == 1, result.stderr
            assert result.stderr.startswith("Error: dkim.key_file: ") and says in result.stderr
    assert sink.count == 0
    assert sum(Ledger(connect(project / "newsletter.db"), example.name).counts().values()) == 0


def test_an_ed25519_dkim_key_signs(
    runner: CliRunner, example: Path, project: Path, tmp_path: Path
) -> None:
    seed = nacl.signing.SigningKey.generate()
    key = tmp_path / "ed25519.key"
    key.write_bytes(seed.encode(nacl.encoding.Base64Encoder) + b"\n")
    _with_dkim(project, key)
    SubscriberStore.open(project / "newsletter.db").add("reader@example.com")
    sink = Sink()
    with running_sink(sink) as port:
        config = project / "newsletter.toml"
        config.write_text(config.read_text() + SMTP_RELAY.format(port=port))
        result = runner.invoke(app, ["send", str(example), "--yes", "--transport", "smtp"])
    assert result.exit_code == 0, result.stderr
    public = seed.verify_key.encode(nacl.encoding.Base64Encoder)
    [(_, data)] = sink.messages
    assert b"a=ed25519-sha256" in data.split(b"\r\n\r\n")[0]
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=ed25519; p=" + public)


@pytest.mark.parametrize(
    ("relay", "says"),
    [
        ('host = "smtp://mail.example.org"', "is not a host name"),
        ('host = "mail.example.org:587"', "is not a host name"),
        ('host = "mail.example.org"\nport = 70000', "smtp.0.port"),
        ('host = "mail.example.org"\nsecurity = "ssl"', "smtp.0.security"),
        ('host = "mail.example.org"\ntimeout = 0', "smtp.0.timeout"),
        ('host = "mail.example.org"\nrate = "fast"', "is not a rate"),
        ('host = "mail.example.org"\nusername = "me"\npassword_env = ""', "smtp.0.password_env"),
        ('host = "mail.example.org"\nusername = "me"\npassword_env = "MY PASS"', "password_env"),
        ('host = "a.example.org"\n[[smtp]]\nhost = "b.example.org"', "need different names"),
    ],
)
def test_relay_settings_are_checked_when_the_config_loads(
    runner: CliRunner, example: Path, project: Path, relay: str, says: str
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + f"\n[[smtp]]\n{relay}\n")
    result = runner.invoke(app, ["status", str(example)])
    assert result.exit_code == 2, result.output
    assert says in result.stderr and "bug" not in result.stderr


def test_smtp_transport_without_a_relay_is_a_config_error(
    runner: CliRunner, example: Path, project: Path
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[sending]\ntransport = "smtp"\n')
    result = runner.invoke(app, ["status", str(example)])
    assert result.exit_code == 2 and "no relay is configured" in result.stderr
