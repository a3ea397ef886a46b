"""The editor's whole week as a new user, outside this repository: the built wheel installed in
a fresh venv, `init`, `new`, edit, `check`, `archive` + `publish` to a folder a local web server
serves, `send --at` two seconds ahead with `newsletter worker` running against an SMTP sink;
a draft and an issue with a TODO are refused. Slow (it installs the wheel): `-m "not slow"`
leaves it out."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import pytest
from conftest import EXAMPLE_SLUG, REPO
from http_site import serving_folder
from smtp_sink import Sink, running_sink

from newsletter.checks.urls import published_urls, unreachable

pytestmark = pytest.mark.slow

ISSUE = """\
---
subject: '{{ subscriber.first_name | default("friend") }}, our first week'
preheader: "A harbour, a bakery and a bus that came on time"
date: 2026-12-04
status: ready
publish: true
lead:
  title: "The harbour opens its doors"
  image:
    src: images/harbour.png
    alt: "The harbour at dawn"
---
Hi {{ subscriber.first_name | default("friend") }},

The harbour opened on Saturday and half the town came to look.
"""


@pytest.fixture(scope="module")
def newsletter_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`newsletter` from the wheel of this checkout, pip-installed into a fresh venv."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", root / "dist"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True, timeout=120)
    subprocess.run(
        [root / "venv" / "bin" / "pip", "install", "-q", "--find-links", root / "dist",
         "newsletter"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return root / "venv" / "bin" / "newsletter"


class User:
    """Runs the installed `newsletter` in the project folder, as a person at a shell would."""

    def __init__(self, program: Path, home: Path) -> None:
        self.program = program
        self.cwd = home
        self.env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.program, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    def refused(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 2, f"{args}: {done.returncode} {done.stdout} {done.stderr}"
        return done.stderr

    def edit(self, path: str, old: str, new: str) -> None:
        file = self.cwd / path
        text = file.read_text()
        assert old in text, f"{old!r} not in {path}"
        file.write_text(text.replace(old, new, 1))


@pytest.fixture
def worker() -> Iterator[list[subprocess.Popen[str]]]:
    """Workers started by the test; any still running afterwards is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_new_users_week(
    newsletter_bin: Path, tmp_path: Path, worker: list[subprocess.Popen[str]]
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    sink = Sink()
    with serving_folder(www) as base, running_sink(sink) as port:
        user = User(newsletter_bin, tmp_path)
        user.ok("init", "harbour-news", "--name", "Harbour News", "--sender",
                "news@harbour.example.org", "--base-url", base, "--postal-address",
                "1 Quay, Harbourtown", "--timezone", "Europe/Paris")  # fmt: skip
        user.cwd = tmp_path / "harbour-news"
        user.edit("newsletter.toml", '# transport = "outbox"', 'transport = "smtp"')
        user.edit(
            "newsletter.toml",
            "# [[smtp]]",
            f'[[smtp]]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n',
        )
        user.edit("newsletter.toml", "# poll_seconds = 10", "poll_seconds = 0.5")
        user.edit("newsletter.toml", '# folder = "/var/www/news"', f'folder = "{www}"')
        for name in ("ada", "grace", "alan"):
            user.ok("subscribers", "add", f"{name}@example.com", "--first-name", name.title())

        [welcome] = (user.cwd / "issues").iterdir()
        assert "is a draft" in user.refused("send", str(welcome), "--yes")

        created = user.ok("new", "Our first week", "--date", "2026-12-04")
        folder = user.cwd / "issues" / "2026-12-04-our-first-week"
        assert str(folder / "issue.md") in created
        assert "status: draft" in (folder / "issue.md").read_text()
        user.edit(f"issues/{folder.name}/issue.md", "status: draft", "status: ready")
        todo = user.refused("send", str(folder), "--yes")
        assert "leftover placeholder 'TODO'" in todo and "was not sent" in todo

        (folder / "issue.md").write_text(ISSUE)
        shutil.copy(REPO / "issues" / EXAMPLE_SLUG / "images" / "hero.png",
                    folder / "images" / "harbour.png")  # fmt: skip
        report = json.loads(user.ok("check", str(folder), "--json"))
        assert report["ok"], report["findings"]

        user.ok("archive")
        user.ok("publish")
        page = www / folder.name / "index.html"
        assert page.is_file() and (www / folder.name / "images" / "harbour.png").is_file()
        assert not (www / welcome.name).exists()

        process = subprocess.Popen(
            [newsletter_bin, "worker"], cwd=user.cwd, env=user.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        worker.append(process)
        due = dt.datetime.now(ZoneInfo("Europe/Paris")) + dt.timedelta(seconds=2)
        due_text = f"{due:%Y-%m-%d %H:%M:%S}"
        scheduled = user.ok("send", str(folder), "--at", due_text, "--tz", "Europe/Paris")
        assert "Scheduled 2026-12-04-our-first-week for" in scheduled
        assert wait_for(lambda: sink.count >= 3, 30), process.stderr
        sent_at = dt.datetime.now(dt.UTC)
        assert sent_at >= due - dt.timedelta(seconds=1)

        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
        assert process.returncode == 0, log
        assert "sending 2026-12-04-our-first-week" in log and "sent: " in log

        assert sorted(sink.per_recipient()) == [
            "ada@example.com", "alan@example.com", "grace@example.com",
        ]  # fmt: skip
        for rcpt, message in sink.parsed():
            name = rcpt.split("@")[0].title()
            assert message["Subject"] == f"{name}, our first week"
            html = message.get_body(("html",)).get_content()
            images = [url for url in published_urls(html, base) if "/images/" in url]
            assert f"{base}/{folder.name}/images/harbour.png" in images
        [state] = [row["state"] for row in json.loads(user.ok("status", "--json"))
                   if row["issue"] == folder.name]  # fmt: skip
        assert state.startswith("sent on") and state.endswith("UTC to 3")

        user.ok("archive")
        user.ok("publish")
        here = f"{base}/{folder.name}/"  # the web page links its images relative to itself
        srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text())
        images = [urljoin(here, src) for src in srcs if "/images/" in urljoin(here, src)]
        assert f"{base}/{folder.name}/images/harbour.png" in images
        assert unreachable(images, timeout=5) == []  # /subscribe is newsletter serve's
        assert "TODO" not in (www / "feed.xml").read_text()


@pytest.mark.slow
def test_the_installed_wheel_builds_checks_sends_and_archives_the_example(
    newsletter_bin: Path, tmp_path: Path
) -> None:
    """Outside the repository, from the wheel: build, check, send (outbox) and archive."""
    project = tmp_path / "example"
    project.mkdir()
    shutil.copy(REPO / "newsletter.toml", project)
    shutil.copytree(REPO / "assets", project / "assets")
    shutil.copytree(REPO / "issues" / EXAMPLE_SLUG, project / "issues" / EXAMPLE_SLUG)
    shutil.copy(REPO / "demo" / "subscribers.csv", project / "people.csv")
    user = User(newsletter_bin, project)
    issue = f"issues/{EXAMPLE_SLUG}"
    assert "Built" in user.ok("build", issue)
    assert (project / "build" / EXAMPLE_SLUG / "index.html").is_file()
    assert json.loads(user.ok("check", issue, "--json"))["counts"]["errors"] == 0
    user.ok("subscribers", "import", "people.csv")
    sent = json.loads(user.ok("send", issue, "--yes", "--transport", "outbox", "--json"))
    assert sent["sent"] == 5 and sent["failed"] == 0
    assert len(list((project / "outbox" / EXAMPLE_SLUG / "new").iterdir())) == 5
    assert "Archived 1 issue" in user.ok("archive")
    assert (project / "site" / EXAMPLE_SLUG / "index.html").is_file()
