"""`newsletter init`: a project anywhere, every setting explained, secrets and output out of git."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from newsletter.cli import console
from newsletter.cli.app import app
from newsletter.compose.issues import load_issue
from newsletter.config import Config, load_config

FLAGS = [
    "--name", "The Morning Note",
    "--sender", "hello@note.example.org",
    "--base-url", "https://note.example.org",
    "--postal-address", "1 Quay Street, Cork, Ireland",
    "--language", "fr",
    "--timezone", "Europe/Paris",
]  # fmt: skip


def init(runner: CliRunner, folder: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["init", str(folder), *args])
    return result.exit_code, result.stdout, result.stderr


def setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if name == "root":
            continue
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = [a for a in inner if issubclass(a, BaseModel)]
        names += setting_names(nested[0], f"{prefix}{name}.") if nested else [prefix + name]
    return names


def test_init_writes_a_whole_project_that_works(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "note"
    code, out, err = init(runner, folder, *FLAGS)
    assert code == 0, err
    assert "Created the newsletter 'The Morning Note'" in out
    config = load_config(folder / "newsletter.toml")
    assert config.name == "The Morning Note" and config.language == "fr"
    assert config.sender.address == "hello@note.example.org"
    assert config.schedule.timezone == "Europe/Paris"
    assert (folder / "assets").is_dir()
    assert list((folder / "templates").iterdir()) == [folder / "templates" / "README.md"]
    assert "copy that file here" in (folder / "templates" / "README.md").read_text()
    [first] = (folder / "issues").iterdir()
    assert first.name == f"{dt.date.today():%Y-%m-%d}-welcome-to-the-morning-note"
    assert load_issue(first).status == "draft"
    build = runner.invoke(app, ["build", str(first)])
    assert build.exit_code == 0, build.stderr


def test_every_setting_is_in_the_file_with_a_comment(runner: CliRunner, tmp_path: Path) -> None:
    init(runner, tmp_path, *FLAGS)
    text = (tmp_path / "newsletter.toml").read_text()
    table, explained, found = "", False, set()
    for line in text.splitlines():
        bare = line.lstrip("# ")
        if bare.startswith("["):
            table, explained = bare.split("]")[0].strip("[]"), line.startswith("#")
        elif "=" in bare and bare.split("=")[0].strip().isidentifier():
            if explained or line.startswith("#"):
                found.add(f"{table}.{bare.split('=')[0].strip()}".lstrip("."))
        elif line.startswith("#"):
            explained = True
    assert set(setting_names(Config)) <= found
    assert tomllib.loads(text)["sender"]["address"] == "hello@note.example.org"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_gitignore_keeps_data_secrets_and_output_out_of_git(
    runner: CliRunner, tmp_path: Path
) -> None:
    init(runner, tmp_path, *FLAGS)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    ignored = [
        "newsletter.db", "newsletter.db-wal", ".newsletter/secret.key", "build/x/index.html",
        "outbox/x/new/1", "site/index.html", ".site.cache.json",
        ".site.previous/index.html", "dkim.pem",
    ]  # fmt: skip
    kept = ["newsletter.toml", "issues/a/issue.md", "templates/README.md", "assets/logo.png"]
    result = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", "--no-index", *ignored, *kept],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.stdout.split() == ignored


def test_init_refuses_to_overwrite_a_project(runner: CliRunner, tmp_path: Path) -> None:
    assert init(runner, tmp_path, *FLAGS)[0] == 0
    before = (tmp_path / "newsletter.toml").read_text()
    code, _, err = init(runner, tmp_path, *FLAGS[:2], *FLAGS[2:])
    assert code == 2
    assert "already holds newsletter.toml" in err and "never overwrites" in err
    assert (tmp_path / "newsletter.toml").read_text() == before


def test_an_existing_gitignore_is_not_overwritten_either(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("mine\n")
    code, _, err = init(runner, tmp_path, *FLAGS)
    assert code == 2 and ".gitignore" in err
    assert not (tmp_path / "newsletter.toml").exists()


def test_bad_answers_are_named_and_nothing_is_written(runner: CliRunner, tmp_path: Path) -> None:
    flags = list(FLAGS)
    flags[flags.index("hello@note.example.org")] = "not an address"
    code, _, err = init(runner, tmp_path, *flags)
    assert code == 2
    assert "sender.address" in err and "not a valid email address" in err
    assert list(tmp_path.iterdir()) == []


def test_without_a_terminal_missing_answers_name_their_flags(
    runner: CliRunner, tmp_path: Path
) -> None:
    code, _, err = init(runner, tmp_path, "--name", "X")
    assert code == 2
    assert "give --sender, --base-url, --postal-address" in err


def test_init_asks_for_what_the_flags_do_not_give(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "interactive", lambda: True)
    answers = "Weekly Bits\nbits@example.org\nhttps://bits.example.org\n2 Main St, Leeds\n"
    result = runner.invoke(app, ["init", str(tmp_path)], input=answers)
    assert result.exit_code == 0, result.stderr
    config = load_config(tmp_path / "newsletter.toml")
    assert (config.name, config.sender.address) == ("Weekly Bits", "bits@example.org")
    assert config.postal_address == "2 Main St, Leeds"


def test_quotes_and_backslashes_in_answers_stay_valid_toml(
    runner: CliRunner, tmp_path: Path
) -> None:
    flags = list(FLAGS)
    flags[1] = 'The "Quoted" \\ Note'
    assert init(runner, tmp_path, *flags)[0] == 0
    assert load_config(tmp_path / "newsletter.toml").name == 'The "Quoted" \\ Note'
