"""Sign-up and unsubscribe in a real headless Chromium at phone width.

Set NEWSLETTER_SCREENSHOTS=DIR to keep a PNG of every page (`make screenshots` does, for the
README).
"""

from __future__ import annotations

import mailbox
import os
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from playwright.sync_api import Page
from typer.testing import CliRunner
from web_server import serving

from newsletter.browser import chromium, find_chromium
from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key
from newsletter.web.app import create_app

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
SHOTS = os.environ.get("NEWSLETTER_SCREENSHOTS")


def look(page: Page, name: str) -> None:
    """Readable on a 375 px phone: no horizontal scrolling; keep a screenshot if asked."""
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def mail_text(folder: Path) -> list[str]:
    return [
        message_from_bytes(m.as_bytes(), policy=policy.default).get_body(("plain",)).get_content()
        for m in mailbox.Maildir(folder, create=False)
    ]


def test_sign_up_confirm_then_unsubscribe_in_a_browser(
    runner: CliRunner, example: Path, project: Path
) -> None:
    config = load_config()
    store = SubscriberStore.open(config.path(config.database))
    signer = Signer(load_key(config.path(config.secret_file)))
    with serving(create_app(config, signer)) as site, chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(f"{site}/subscribe")
        look(page, "subscribe")
        page.fill("#email", "ines@example.org")
        page.fill("#first_name", "Inês")
        page.click("button[type=submit]")
        page.locator("h1", has_text="Check your inbox").wait_for()
        look(page, "check-inbox")
        assert store.get("ines@example.org").status == Status.PENDING

        [confirmation] = mail_text(project / "outbox" / "notices")
        path = re.search(r"https://news\.example\.org(/confirm/\S+)", confirmation)[1]
        page.goto(site + path)
        look(page, "confirm")
        page.click("button[type=submit]")
        page.locator("h1", has_text="subscribed").wait_for()
        look(page, "subscribed")
        assert store.get("ines@example.org").status == Status.ACTIVE

        assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0
        [issue_text] = mail_text(project / "outbox" / example.name)
        assert "Hi Inês," in issue_text
        link = re.search(r"Unsubscribe: https://news\.example\.org(/unsubscribe/\S+)", issue_text)
        page.goto(site + link[1])
        page.locator("h1", has_text="Unsubscribe?").wait_for()
        look(page, "unsubscribe")
        assert store.get("ines@example.org").status == Status.ACTIVE
        page.click("button[type=submit]")
        page.locator("h1", has_text="You're unsubscribed").wait_for()
        look(page, "unsubscribed")
        assert store.get("ines@example.org").status == Status.UNSUBSCRIBED
