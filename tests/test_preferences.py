"""The preferences page: topics as checkboxes, the first name, unsubscribe from everything;
every change recorded with its source; `send --topic` sends to what readers chose."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import Config, load_config
from newsletter.deliver.preferences import preference_history
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, signer_for
from newsletter.web.app import create_app

pytestmark = pytest.mark.usefixtures("each_database")

TOPICS = """
[[topics]]
name = "Local news"
description = "Good news from Bristol and around."
tag = "local"

[[topics]]
name = "Science"
description = "Discoveries, explained."
tag = "science"
"""


@pytest.fixture
def config(project: Path) -> Config:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text() + TOPICS)
    return load_config()


@pytest.fixture
def store(config: Config) -> SubscriberStore:
    return SubscriberStore.open(config.database_location)


@pytest.fixture
def signer(config: Config) -> Signer:
    return signer_for(config)


@pytest.fixture
def http(config: Config, signer: Signer) -> Iterator[httpx.Client]:
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as client:
        yield client


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def checked(page: httpx.Response) -> list[str]:
    return re.findall(r'name="topic" value="([^"]+)" checked', page.text)


def test_topics_and_name_change_and_are_recorded(
    http: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org", "Ada", tags=["local", "vip"])
    path = f"/preferences/{signer.subscriber_token(person.public_id, '2026-11-24-x')}"
    page = http.get(path)
    assert page.status_code == 200 and checked(page) == ["Local news"]
    assert "Discoveries, explained." in page.text and 'value="Ada"' in page.text
    assert "ada@example.org" not in page.text
    for _ in range(2):
        http.get(path)  # a GET changes nothing
    assert preference_history(store, person.id) == []

    saved = http.post(
        path, data={"csrf": csrf(page), "topic": ["Science"], "first_name": "  Ada  L. "}
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert checked(saved) == ["Science"]
    after = store.get("ada@example.org")
    assert after.tags == ("science", "vip") and after.first_name == "Ada L."  # vip untouched
    history = preference_history(store, person.id)
    assert [(h["what"], h["value"], h["source"]) for h in history] == [
        ("topic Local news", "off", "preferences page"),
        ("topic Science", "on", "preferences page"),
        ("first name", "Ada L.", "preferences page"),
    ]
    again = http.post(
        path, data={"csrf": csrf(saved), "topic": ["Science"], "first_name": "Ada L."}
    )
    assert "Nothing to change." in again.text and len(preference_history(store, person.id)) == 3


def test_preferences_need_csrf_and_a_genuine_token(
    http: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org", tags=["local"])
    path = f"/preferences/{signer.subscriber_token(person.public_id, 'x')}"
    assert http.post(path, data={"topic": ["Science"]}).status_code == 403
    forged = f"/preferences/{Signer(b'guess').subscriber_token(person.public_id, 'x')}"
    page = http.get(path)
    assert http.post(forged, data={"csrf": csrf(page), "topic": ["Science"]}).status_code == 400
    test_copy = http.get(f"/preferences/{signer.subscriber_token('', 'x')}")
    assert test_copy.status_code == 400 and "test copy" in test_copy.text
    bad_name = http.post(path, data={"csrf": csrf(page), "first_name": "Eve\x1b[31m"})
    assert bad_name.status_code == 400
    assert store.get("ada@example.org").tags == ("local",)


def test_unsubscribe_from_everything_then_resubscribe(
    http: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org", tags=["local"])
    token = signer.subscriber_token(person.public_id, "x")
    page = http.get(f"/preferences/{token}")
    assert f'action="/unsubscribe/{token}"' in page.text
    done = http.post(
        f"/unsubscribe/{token}", data={"csrf": csrf(page), "List-Unsubscribe": "One-Click"}
    )
    assert "You're unsubscribed" in done.text
    assert store.get("ada@example.org").status == Status.UNSUBSCRIBED
    page = http.get(f"/preferences/{token}")
    assert "Resubscribe" in page.text and 'name="topic"' not in page.text


def test_send_topic_sends_to_the_topic_tag(
    runner: CliRunner, example: Path, project: Path, store: SubscriberStore
) -> None:
    store.add("local@example.org", tags=["local"])
    store.add("science@example.org", tags=["Science"])
    result = runner.invoke(app, ["send", str(example), "--yes", "--topic", "science"])
    assert result.exit_code == 0, result.stderr
    box = mailbox.Maildir(project / "outbox" / example.name, create=False)
    assert [message_from_bytes(m.as_bytes())["To"] for m in box] == ["science@example.org"]
    unknown = runner.invoke(app, ["send", str(example), "--yes", "--topic", "Sport"])
    assert unknown.exit_code == 2 and "Local news, Science" in unknown.stderr
    both = runner.invoke(app, ["send", str(example), "--yes", "--topic", "Science", "--tag", "x"])
    assert both.exit_code == 2
