"""Images that are really there: readable output, `publish`, no symlinks out of the project,
and a send that stops when the published images do not answer."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLE_SLUG, NO_URL_CHECK
from http_site import QuietHandler, serving_folder
from smtp_sink import Sink, running_sink
from typer.testing import CliRunner

from newsletter.checks.urls import published_urls, unreachable
from newsletter.cli.app import app
from newsletter.cli.worker import send_scheduled
from newsletter.config import load_config
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.deliver.worker import Worker


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_build_and_site_folders_are_readable_by_a_web_server(
    runner: CliRunner, project: Path, example: Path, umask: None
) -> None:
    assert run(runner, "build", str(example))[0] == 0
    assert run(runner, "archive")[0] == 0
    for folder in (
        project / "build" / EXAMPLE_SLUG,
        project / "site",
        project / "site" / EXAMPLE_SLUG,
    ):
        assert mode(folder) == 0o755, folder
    assert mode(project / "site" / "index.html") == 0o644


def test_publish_copies_the_site_into_a_folder_readable_by_everyone(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    assert run(runner, "archive")[0] == 0
    (project / "site" / "index.html").chmod(0o600)
    target = tmp_path / "www"
    code, out, err = run(runner, "publish", "--to", str(target))
    assert code == 0, err
    assert "Published" in out and str(target) in out
    image = target / EXAMPLE_SLUG / "images" / "hero.png"
    assert image.read_bytes() == (example / "images" / "hero.png").read_bytes()
    assert (target / "feed.xml").is_file()
    for path in [target, *target.rglob("*")]:
        assert mode(path) == (0o755 if path.is_dir() else 0o644), path


def test_publish_runs_the_configured_command(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    target = tmp_path / "remote"
    target.mkdir()
    config = project / "newsletter.toml"
    text = config.read_text().replace(NO_URL_CHECK, "")
    config.write_text(text + f'\n[publish]\ncommand = "cp -R {{site}}/. {target}"\n')
    assert run(runner, "archive")[0] == 0
    code, out, err = run(runner, "publish")
    assert code == 0, err
    assert (target / EXAMPLE_SLUG / "index.html").is_file()
    assert mode(target / EXAMPLE_SLUG / "images" / "hero.png") == 0o644
    assert "Published" in out and "cp -R" in out


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("false", "publish command 'false' failed (1)"),
        ("no-such-program-here {site}", "'no-such-program-here' not found"),
        ("sleep 5", "did not finish in 0.5 s"),
    ],
)
def test_a_failing_publish_command_is_one_line_and_exit_1(
    runner: CliRunner, project: Path, example: Path, command: str, message: str
) -> None:
    config = project / "newsletter.toml"
    text = config.read_text().replace(NO_URL_CHECK, "")
    config.write_text(text + f'\n[publish]\ncommand = "{command}"\ntimeout = 0.5\n')
    assert run(runner, "archive")[0] == 0
    code, _, err = run(runner, "publish")
    assert code == 1
    assert message in err


def test_publish_needs_a_site_and_a_destination(
    runner: CliRunner, project: Path, example: Path
) -> None:
    code, _, err = run(runner, "publish")
    assert code == 2 and "run newsletter archive first" in err
    assert run(runner, "archive")[0] == 0
    code, _, err = run(runner, "publish")
    assert code == 2 and "nowhere to publish to" in err


def test_an_image_linked_from_outside_the_project_is_refused(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "private.png"
    secret.parent.mkdir()
    shutil.copy(example / "images" / "hero.png", secret)
    hero = example / "images" / "hero.png"
    hero.unlink()
    hero.symlink_to(secret)
    code, _, err = run(runner, "build", str(example))
    assert code == 2
    assert "lead.image.src" in err and "is a symbolic link to" in err and "outside" in err
    code, _, err = run(runner, "archive")
    assert code == 2 and "symbolic link" in err
    assert not (project / "site").exists()


def test_an_image_linked_inside_the_issue_folder_is_fine(runner: CliRunner, example: Path) -> None:
    hero = example / "images" / "hero.png"
    (example / "images" / "original.png").write_bytes(hero.read_bytes())
    hero.unlink()
    hero.symlink_to("original.png")
    assert run(runner, "build", str(example))[0] == 0


# --- the URL check before a real send ---------------------------------------------------------


class _Slow(QuietHandler):
    """Answers every HEAD after 0.4 s; refuses HEAD on /no-head/ (405) so GET is used."""

    def do_HEAD(self) -> None:
        if self.path.startswith("/no-head/"):
            self.send_error(405)
            return
        time.sleep(0.4)
        super().do_HEAD()


def test_unreachable_lists_what_does_not_answer_asking_a_few_at_once(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / f"{name}.png").write_bytes(b"x")
    (tmp_path / "no-head").mkdir()
    (tmp_path / "no-head" / "f.png").write_bytes(b"x")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    with serving_folder(tmp_path, _Slow) as url:
        urls = [f"{url}/{name}.png" for name in ("a", "b", "c", "d", "e", "gone")]
        urls += [f"{url}/no-head/f.png", f"http://127.0.0.1:{silent.getsockname()[1]}/x.png"]
        started = time.monotonic()
        missing = unreachable(urls, timeout=1.0)
        elapsed = time.monotonic() - started
    silent.close()
    assert [url for url, _ in missing] == [urls[5], urls[7]]
    assert missing[0][1] == "HTTP 404"
    assert "timed out" in missing[1][1]
    assert elapsed < 2.5  # six 0.4 s answers and a 1 s timeout, in parallel


def test_published_urls_are_the_links_and_images_under_base_url() -> None:
    html = (
        '<a href="https://n.example.org/x/">x</a><img src="https://n.example.org/x/a.png">'
        '<img src="https://n.example.org/x/a.png"><a href="https://elsewhere.org/n.example.org/">'
        '<a href="{{ unsubscribe_url }}">u</a><a href="https://n.example.org.evil/">e</a>'
    )
    assert published_urls(html, "https://n.example.org") == [
        "https://n.example.org/x/",
        "https://n.example.org/x/a.png",
    ]


def smtp_config(base_url: str, port: int, www: Path) -> str:
    return f"""
name = "Local"
base_url = "{base_url}"
postal_address = "1 Road, Town"
logo = "assets/logo.png"

[sender]
name = "Local"
address = "hello@example.org"

[sending]
transport = "smtp"

[[smtp]]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5

[publish]
folder = "{www}"
"""


def test_a_real_send_stops_until_the_images_answer(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("ada@example.com", "Ada")
    www = tmp_path / "www"
    www.mkdir()
    sink = Sink()
    with serving_folder(www) as base, running_sink(sink) as port:
        (project / "newsletter.toml").write_text(smtp_config(base, port, www))
        code, _, err = run(runner, "send", str(example), "--yes")
        assert code == 2
        assert f"{base}/{EXAMPLE_SLUG}/images/hero.png does not answer: HTTP 404" in err
        assert "8 published file(s)" in err and "--skip-url-check" in err
        assert sink.count == 0
        assert run(runner, "archive")[0] == 0
        assert run(runner, "publish")[0] == 0
        code, _, err = run(runner, "send", str(example), "--yes")
        assert code == 0, err
        assert sink.count == 1


def test_skip_url_check_sends_anyway(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("ada@example.com", "Ada")
    www = tmp_path / "www"
    www.mkdir()
    sink = Sink()
    with serving_folder(www) as base, running_sink(sink) as port:
        (project / "newsletter.toml").write_text(smtp_config(base, port, www))
        code, _, err = run(runner, "send", str(example), "--yes", "--skip-url-check")
        assert code == 0, err
        assert sink.count == 1


def test_scheduling_warns_about_unpublished_images_and_the_worker_enforces_it(
    runner: CliRunner, project: Path, example: Path, tmp_path: Path
) -> None:
    SubscriberStore.open(project / "newsletter.db").add("ada@example.com", "Ada")
    www = tmp_path / "www"
    www.mkdir()
    sink = Sink()
    with serving_folder(www) as base, running_sink(sink) as port:
        (project / "newsletter.toml").write_text(smtp_config(base, port, www))
        code, out, err = run(runner, "send", str(example), "--at", "2099-01-01 07:00")
        assert code == 0, err
        assert "8 image(s) or link(s) under base_url do not answer yet" in err
        assert "Scheduled" in out
        later = dt.datetime(2099, 1, 1, 7, 1, tzinfo=dt.UTC)
        worker = Worker(
            load_config(project / "newsletter.toml"), send_scheduled, clock=lambda: later
        )
        assert worker.run_due() == 1
        assert sink.count == 0
        code, out, _ = run(runner, "schedule", "list", "--all", "--json")
        assert '"status": "failed"' in out and "does not answer: HTTP 404" in out
