"""Sign-up and unsubscribe in a real headless Chromium at phone width.

Set NEWSLETTER_SCREENSHOTS=DIR to keep a PNG of every page (`make screenshots` does, for the
README).
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import time
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
    if not (folder / "cur").exists():
        return []
    return [
        message_from_bytes(m.as_bytes(), policy=policy.default).get_body(("plain",)).get_content()
        for m in mailbox.Maildir(folder, create=False)
    ]


def wait_for_mail(folder: Path, count: int = 1) -> list[str]:
    """The texts in `folder` once there are `count` (sign-up mails after it answers)."""
    deadline = time.monotonic() + 5
    while len(texts := mail_text(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return texts


def test_sign_up_confirm_then_unsubscribe_in_a_browser(
    runner: CliRunner, example: Path, project: Path
) -> None:
    config = load_config()
    store = SubscriberStore.open(config.database_location)
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
        [confirmation] = wait_for_mail(project / "outbox" / "notices")
        assert store.get("ines@example.org").status == Status.PENDING

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


def test_preferences_in_a_browser_then_send_to_a_topic(
    runner: CliRunner, example: Path, project: Path
) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(
        toml.read_text()
        + '\n[[topics]]\nname = "Local news"\ndescription = "Good news from Bristol."\n'
        'tag = "local"\n\n[[topics]]\nname = "Science"\ndescription = "Discoveries, explained '
        'without the jargon, every other week."\ntag = "science"\n'
    )
    config = load_config()
    store = SubscriberStore.open(config.database_location)
    signer = Signer(load_key(config.path(config.secret_file)))
    person = store.add("ines@example.org", "Ines", tags=["local"])
    assert (
        runner.invoke(app, ["send", str(example), "--yes", "--topic", "Local news"]).exit_code == 0
    )
    [issue_text] = mail_text(project / "outbox" / example.name)
    link = re.search(
        r"Manage preferences: https://news\.example\.org(/preferences/\S+)", issue_text
    )
    with serving(create_app(config, signer)) as site, chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(site + link[1])
        look(page, "preferences")
        assert page.is_checked("input[value='Local news']")
        assert not page.is_checked("input[value='Science']")
        page.uncheck("input[value='Local news']")
        page.check("input[value='Science']")
        page.fill("#first_name", "Inês")
        page.click("button[type=submit]:has-text('Save')")
        page.locator(".saved", has_text="Saved.").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.is_checked("input[value='Science']")
    assert store.get(person.email).tags == ("science",)

    later = project / "issues" / "2026-12-01-later"
    shutil.copytree(example, later)
    for topic, expected in (("Local news", []), ("Science", ["Hi Inês,"])):
        result = runner.invoke(app, ["send", str(later), "--yes", "--topic", topic])
        # a topic nobody active chose any more sends nothing and says so (exit 2)
        assert result.exit_code == (0 if expected else 2), result.stderr
        box = project / "outbox" / later.name
        greetings = [re.search(r"Hi [^,]+,", text)[0] for text in mail_text(box)]
        assert greetings == expected, topic
