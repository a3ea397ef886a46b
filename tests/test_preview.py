"""`preview` in a real headless Chromium, and `screenshot`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from smtp_sink import free_port
from typer.testing import CliRunner

from newsletter.browser import INSTALL_HINT, chromium, find_chromium
from newsletter.cli.app import app
from newsletter.deliver.subscribers import SubscriberStore

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
TITLE = "Paris shelters the first gay refugee from Chechnya as the White House stays quiet"


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def server(example: Path, project: Path) -> Iterator[str]:
    """`newsletter preview` running as its own process on a free port."""
    SubscriberStore.open(project / "newsletter.db").add("ada@example.org", first_name="Ada")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", str(example), "--port", str(port)],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if get_json(f"{url}/state.json")["version"]:
                break
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "preview did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_state_and_pages_over_http(server: str) -> None:
    state = get_json(f"{server}/state.json")
    assert state["error"] is None
    assert state["subject"] == "France opens its doors to gay men fleeing Chechnya"
    assert str(state["preheader"]).startswith("Paris acts while Washington says nothing.")
    assert isinstance(state["findings"], list)
    with urllib.request.urlopen(f"{server}/email.html") as response:
        html = response.read().decode()
    assert "Hi Alex," in html and "{{" not in html
    assert 'src="/images/hero.png"' in html
    with urllib.request.urlopen(f"{server}/images/hero.png") as response:
        assert response.headers["content-type"] == "image/png"
    with urllib.request.urlopen(f"{server}/email.txt") as response:
        assert "Unsubscribe: https://news.example.org/unsubscribe/" in response.read().decode()


@needs_chromium
def test_page_shows_both_frames_and_follows_edits(server: str, example: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        for frame_id in ("desktop", "phone"):
            frame = page.frame_locator(f"#{frame_id}")
            frame.locator("h1").wait_for(timeout=15000)
            assert frame.locator("h1").inner_text() == TITLE
        widths = page.evaluate(
            "[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().width)"
        )
        assert widths == [650, 375]
        assert page.locator("#subject").inner_text() == (
            "France opens its doors to gay men fleeing Chechnya"
        )
        assert "Hi Alex," in page.locator("#text").inner_text()
        if shots := os.environ.get("NEWSLETTER_SCREENSHOTS"):
            page.screenshot(path=str(Path(shots) / "preview.png"))

        issue = example / "issue.md"
        issue.write_text(issue.read_text().replace(TITLE, "An edited headline"))
        for frame_id in ("desktop", "phone"):
            page.frame_locator(f"#{frame_id}").locator(
                "h1", has_text="An edited headline"
            ).wait_for(timeout=15000)

        good = issue.read_text()
        issue.write_text(good.replace("subject:", "subject: [unclosed", 1))
        page.locator("#error", has_text="YAML syntax error").wait_for(timeout=15000)
        assert page.locator("#frames").is_hidden()
        issue.write_text(good)
        page.locator("#frames").wait_for(state="visible", timeout=15000)

        page.select_option("#who", label="Ada <ada@example.org>")
        page.frame_locator("#desktop").locator("text=Hi Ada,").wait_for(timeout=15000)


@needs_chromium
def test_screenshot_writes_phone_and_desktop_pngs(
    runner: CliRunner, example: Path, project: Path
) -> None:
    result = runner.invoke(app, ["screenshot", str(example), "--out", str(project / "shots")])
    assert result.exit_code == 0, result.stderr
    for width in (375, 650):
        path = project / "shots" / f"{example.name}-{width}.png"
        with Image.open(path) as image:
            assert image.width == width and image.height > 2000


def test_screenshot_without_chromium_says_how_to_install(
    runner: CliRunner, example: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NEWSLETTER_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["screenshot", str(example)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {INSTALL_HINT}"
