"""The welcome email: once per subscriber after confirming (web) or `subscribers add --welcome`,
through the ledger, never to the list; read back from the outbox Maildir."""

from __future__ import annotations

import html
import mailbox
import re
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from smtp_sink import Sink, running_sink
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import Config, load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.deliver.welcome import Welcomer, queue_welcome, send_welcome, waiting_welcomes
from newsletter.errors import InputError
from newsletter.web.app import create_app

pytestmark = pytest.mark.usefixtures("each_database")

WELCOME = """\
subject: "Welcome to The Bright Side"
preheader: "What to expect"
date: 2026-11-24
{status}lead:
  title: "Glad you are here"
"""


@pytest.fixture
def welcome(project: Path, write_issue: Callable[..., Path]) -> Callable[..., Config]:
    """Configure issues/_welcome (ready, or a draft) and return the config."""

    def make(status: str = "") -> Config:
        write_issue(WELCOME.format(status=status), "We write every Tuesday.\n", slug="_welcome")
        with (project / "newsletter.toml").open("a", encoding="utf-8") as file:
            file.write('\n[welcome]\nissue = "issues/_welcome"\n')
        return load_config()

    return make


def maildir(config: Config, slug: str, expect: int = 0, wait: float = 5.0) -> list[bytes]:
    """The messages in the outbox folder of `slug`, once there are `expect` (waiting `wait` s)."""
    box = config.path(config.sending.outbox) / slug
    deadline = time.monotonic() + wait
    while True:
        ready = (box / "cur").exists()
        found = [m.as_bytes() for m in mailbox.Maildir(box, create=False)] if ready else []
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


@pytest.fixture
def site(welcome: Callable[..., Config]) -> Iterator[tuple[str, Config]]:
    config = welcome()
    with serving(create_app(config, signer_for(config))) as url:
        yield url, config


def sign_up_and_confirm(client: httpx.Client, config: Config, email: str) -> str:
    form = client.get("/subscribe")
    client.post("/subscribe", data={"email": email, "csrf": csrf(form)})
    [notice] = maildir(config, "notices", 1)
    text = message_from_bytes(notice).get_payload(decode=True) or b""
    if not text:
        text = message_from_bytes(notice).get_payload(0).get_payload(decode=True)
    path = re.search(r"https://news\.example\.org(/confirm/\S+)", text.decode())[1]
    button = client.get(path)
    done = client.post(path, data={"csrf": csrf(button)})
    assert done.status_code == 200 and "You're subscribed" in html.unescape(done.text)
    return path


def test_welcome_arrives_once_after_confirming(site: tuple[str, Config], runner: CliRunner) -> None:
    url, config = site
    with httpx.Client(base_url=url, timeout=10) as client:
        path = sign_up_and_confirm(client, config, "zoe@example.org")
        [message] = maildir(config, "_welcome", 1)
        parsed = message_from_bytes(message)
        assert parsed["To"] == "zoe@example.org"
        assert parsed["Subject"] == "Welcome to The Bright Side"
        # a second confirmation (the button pressed twice): already subscribed, no new welcome
        again = client.post(path, data={"csrf": csrf(client.get("/subscribe"))})
        assert again.status_code == 200
    store = SubscriberStore.open(config.database_location)
    zoe = store.get("zoe@example.org")
    assert zoe is not None and zoe.status == Status.ACTIVE
    report = send_welcome(config, zoe.id)  # a retry finds the ledger row sent
    assert report.sent == 0 and report.skipped_sent == 1
    assert len(maildir(config, "_welcome", 2, wait=0.5)) == 1
    shown = runner.invoke(app, ["status", "issues/_welcome"])
    assert shown.exit_code == 0 and "sent 1" in shown.stdout


def test_a_draft_welcome_is_not_sent_and_confirming_still_works(
    welcome: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = welcome("status: draft\n")
    with (
        serving(create_app(config, signer_for(config))) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        sign_up_and_confirm(client, config, "ann@example.org")
    assert maildir(config, "_welcome", 1, wait=0.5) == []
    assert "welcome email not sent" in caplog.text and "draft" in caplog.text
    assert "ann@example.org" not in caplog.text


def test_the_welcome_issue_never_goes_to_the_list(
    welcome: Callable[..., Config], runner: CliRunner
) -> None:
    config = welcome()
    with SubscriberStore.open(config.database_location) as store:
        for n in range(3):
            store.add(f"reader{n}@example.org")
    refused = runner.invoke(app, ["send", "issues/_welcome", "--yes"])
    assert refused.exit_code == 2 and "welcome email" in refused.stderr
    refused = runner.invoke(app, ["send", "issues/_welcome", "--dry-run"])
    assert refused.exit_code == 2
    assert maildir(config, "_welcome") == []


def test_subscribers_add_welcome_sends_it_once(
    welcome: Callable[..., Config], runner: CliRunner
) -> None:
    config = welcome()
    first = runner.invoke(app, ["subscribers", "add", "new@example.org", "--welcome"])
    assert first.exit_code == 0, first.output
    assert "welcome email sent" in first.stdout.lower()
    again = runner.invoke(app, ["subscribers", "add", "new@example.org", "--welcome"])
    assert again.exit_code == 0 and "already" in again.stdout.lower()
    [message] = maildir(config, "_welcome", 1)
    assert message_from_bytes(message)["To"] == "new@example.org"


def test_welcome_needs_the_setting(project: Path, runner: CliRunner) -> None:
    config = load_config()
    with pytest.raises(InputError):
        send_welcome(config, 1)
    result = runner.invoke(app, ["subscribers", "add", "x@example.org", "--welcome"])
    assert result.exit_code == 2 and "[welcome]" in result.stderr


def test_a_deferred_or_left_welcome_is_retried_by_the_welcomer(
    welcome: Callable[..., Config], smtp_project: Callable[..., Path]
) -> None:
    welcome()
    busy = {"busy@example.org"}
    sink = Sink(refuse=lambda a: "452 4.2.2 Mailbox full" if a in busy else None)
    with running_sink(sink) as port:
        smtp_project(port)
        config = load_config()
        with SubscriberStore.open(config.database_location) as store:
            busy_id = store.add("busy@example.org").id
            left_id = store.add("left@example.org").id
        assert send_welcome(config, busy_id).deferred == 1
        queue_welcome(config, left_id)  # queued, then the process stopped before sending
        assert sorted(waiting_welcomes(config)) == sorted([busy_id, left_id])
        busy.clear()
        welcomer = Welcomer(config, retry_every=0.2)
        welcomer.start()
        deadline = time.monotonic() + 10
        while len(sink.per_recipient()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # another retry round finds nothing left
        welcomer.close(5)
    assert sink.per_recipient() == {"busy@example.org": 1, "left@example.org": 1}
    assert waiting_welcomes(config) == [] and not welcomer.thread.is_alive()
