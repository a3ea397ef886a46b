"""A base_url with a path (https://news.example.org/newsletter): every link in an email, every
form and redirect answers from `serve` behind that prefix, as a proxy forwarding it would."""

from __future__ import annotations

import mailbox
import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
from bs4 import BeautifulSoup
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.web.app import create_app

PUBLIC = "https://news.example.org/newsletter"


def links(message: EmailMessage) -> set[str]:
    """Every URL in the message: hrefs and srcs of the HTML, the text's and the headers'."""
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    found = {tag["href"] for tag in soup.find_all(href=True)}
    found |= {tag["src"] for tag in soup.find_all(src=True)}
    found |= set(re.findall(r"https?://[^\s<>\"]+", text))
    found |= set(re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"]))
    return found


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def actions(page: httpx.Response) -> list[str]:
    return re.findall(r'<form method="post" action="([^"]+)"', page.text)


def test_every_link_and_form_works_behind_the_prefix(
    runner: CliRunner, example: Path, project: Path
) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text().replace('"https://news.example.org"', f'"{PUBLIC}"'))
    config = load_config()
    assert config.base_path == "/newsletter"
    store = SubscriberStore.open(config.database_location)
    store.add("ada@example.org", "Ada")
    assert runner.invoke(app, ["send", str(example), "--yes"]).exit_code == 0
    assert runner.invoke(app, ["archive"]).exit_code == 0
    [stored] = mailbox.Maildir(project / "outbox" / example.name, create=False)
    message = message_from_bytes(stored.as_bytes(), policy=policy.default)
    ours = {url for url in links(message) if url.startswith("https://news.example.org")}
    assert all(url.startswith(f"{PUBLIC}/") or url == PUBLIC for url in ours), ours
    kinds = {url.removeprefix(PUBLIC).strip("/").split("/")[0] for url in ours}
    assert {"unsubscribe", "preferences", example.name, ""} <= kinds  # the logo leads home

    with (
        serving(create_app(config, signer_for(config))) as site,
        httpx.Client(base_url=site, follow_redirects=True, timeout=10) as http,
    ):
        for url in sorted(ours):
            answer = http.get(url.replace("https://news.example.org", site))
            assert answer.status_code == 200, url
            for action in actions(answer):  # the app's own (relative), the archive's (absolute)
                assert action.removeprefix("https://news.example.org").startswith("/newsletter/")
        assert http.get("/newsletter").url.path == "/newsletter/"  # redirects keep it
        issue = http.get(f"/newsletter/{example.name}")
        assert issue.url.path == f"/newsletter/{example.name}/"
        unsubscribe = next(url for url in ours if "/unsubscribe/" in url)
        page = http.get(unsubscribe.replace("https://news.example.org", site))
        [action] = actions(page)
        done = http.post(action, data={"csrf": csrf(page), "List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "You're unsubscribed" in done.text
        assert store.get("ada@example.org").status == Status.UNSUBSCRIBED

        form = http.get("/newsletter/subscribe")
        [action] = actions(form)
        assert action == "/newsletter/subscribe"
        http.post(action, data={"email": "bo@example.org", "csrf": csrf(form)})
        box = project / "outbox" / "notices"
        for _ in range(250):  # sign-up mails after answering
            if (box / "cur").exists() and list(mailbox.Maildir(box, create=False)):
                break
            time.sleep(0.02)
        [notice] = mailbox.Maildir(box, create=False)
        text = message_from_bytes(notice.as_bytes(), policy=policy.default)
        body = text.get_body(("plain",)).get_content()
        confirm = re.search(rf"{re.escape(PUBLIC)}(/confirm/\S+)", body)[1]
        page = http.get(f"/newsletter{confirm}")
        [action] = actions(page)
        assert action == f"/newsletter{confirm}"
        assert http.post(action, data={"csrf": csrf(page)}).status_code == 200
        assert store.get("bo@example.org").status == Status.ACTIVE
