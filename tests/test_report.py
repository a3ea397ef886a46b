"""Clicks counted per link without tracking anyone, scanners apart, and `newsletter report`."""

from __future__ import annotations

import json
import mailbox
import os
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from browser_measure import measure, needs_chromium
from smtp_sink import Sink, running_sink
from typer.testing import CliRunner
from web_server import serving

from newsletter.analytics.links import CANARY, LinkSigner, redirect_url, track_links
from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver import db
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key
from newsletter.web.app import create_app

pytestmark = pytest.mark.usefixtures("each_database")

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1"
BASE = "https://news.example.org"


def _enable(project: Path, opens: bool = False) -> None:
    config = project / "newsletter.toml"
    extra = f"\n[analytics]\nclicks = true\nopens = {'true' if opens else 'false'}\n"
    config.write_text(config.read_text() + extra)


def _signer(project: Path) -> Signer:
    return Signer(load_key(project / ".newsletter" / "secret.key"))


def _add(project: Path, count: int) -> list[str]:
    store = SubscriberStore.open(project / "newsletter.db")
    emails = [f"reader{i}@example.com" for i in range(count)]
    for i, email in enumerate(emails):
        store.add(email, first_name=f"Name{i}")
    return emails


def _outbox(project: Path, slug: str) -> list[EmailMessage]:
    box = mailbox.Maildir(project / "outbox" / slug, create=False)
    return [message_from_bytes(m.as_bytes(), policy=policy.default) for m in box]  # type: ignore[misc]


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _redirects(html: str) -> list[str]:
    return re.findall(r'href="(https://news\.example\.org/r/[^"]+)"', html)


@pytest.fixture
def sent(project: Path, example: Path, runner: CliRunner) -> Iterator[list[EmailMessage]]:
    """The example issue sent to three readers through the outbox, clicks on."""
    _enable(project, opens=True)
    _add(project, 3)
    result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    yield _outbox(project, example.name)


@pytest.fixture
def client(project: Path) -> Iterator[httpx.Client]:
    app_ = create_app(load_config(), _signer(project), send_mail=lambda to, data: None)
    with serving(app_) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def _path(url: str) -> str:
    return urlsplit(url).path


# --- the signed redirect ---------------------------------------------------------------------


def test_links_are_wrapped_alike_for_every_reader_and_name_nobody(
    sent: list[EmailMessage], example: Path
) -> None:
    per_copy = [_redirects(_html(message)) for message in sent]
    assert per_copy[0] and all(copy == per_copy[0] for copy in per_copy)  # no reader in a link
    for message in sent:
        to = str(message["To"]).split("<")[-1].rstrip(">")
        for url in _redirects(_html(message)) + re.findall(r"https://\S+/r/\S+", _text(message)):
            assert to not in url and to.split("@")[0] not in url
            assert f"/r/{example.name}/" in url
        assert "/unsubscribe/" in _html(message)  # the reader's own links stay direct


def test_redirect_goes_only_where_the_key_signed(
    sent: list[EmailMessage], client: httpx.Client, project: Path, example: Path
) -> None:
    url = _redirects(_html(sent[0]))[0]
    answer = client.get(_path(url), headers={"User-Agent": BROWSER})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("http")
    assert "news.example.org/r/" not in answer.headers["location"]
    body, _, mac = _path(url).rsplit("/", 1)[1].partition(".")
    evil = LinkSigner(b"another key").token(example.name, "https://evil.example")
    for bad in (
        f"/r/{example.name}/{evil}",  # forged
        f"/r/{example.name}/{body[:-2]}AA.{mac}",  # altered link
        f"/r/{example.name}/{body}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}",  # altered signature
        f"/r/another-issue/{body}.{mac}",  # another issue's
        f"/r/{example.name}/nonsense",  # unknown
        f"/r/{example.name}/{body}=.{mac}",  # a second spelling of the same bytes
    ):
        refused = client.get(bad, headers={"User-Agent": BROWSER})
        assert refused.status_code == 400, bad
        assert "location" not in refused.headers


def _canary(html: str) -> str:
    trap = re.search(r'<a href="(https://news\.example\.org/r/[^"]+)" style="display:none', html)
    assert trap is not None
    return trap.group(1)


def _click_like_people_and_scanners(client: httpx.Client, html: str) -> None:
    """One person, a HEAD, a script, a gateway opening four links at once, the canary."""
    canary = _canary(html)
    links = [url for url in dict.fromkeys(_redirects(html)) if url != canary]
    assert len(links) >= 4
    person = {"User-Agent": BROWSER}
    assert client.get(_path(links[0]), headers=person).status_code == 302
    assert client.head(_path(links[0]), headers=person).status_code == 302
    assert client.get(_path(links[1]), headers={"User-Agent": "python-requests/2.32"}).is_redirect
    gateway = {"User-Agent": BROWSER.replace("18_0", "17_5")}  # looks like a browser
    for url in links[:4]:
        assert client.get(_path(url), headers=gateway).status_code == 302
    assert client.get(_path(canary), headers=person).status_code == 204


def test_clicks_by_people_and_scanners_are_counted_apart(
    sent: list[EmailMessage], client: httpx.Client, project: Path, example: Path
) -> None:
    _click_like_people_and_scanners(client, _html(sent[0]))
    conn = db.connect(project / "newsletter.db")
    rows = conn.execute("SELECT url, human, reason FROM clicks ORDER BY id").fetchall()
    assert [human for _, human, _ in rows].count(1) == 1  # only the person's first click
    reasons = [reason for _, human, reason in rows if not human]
    assert len(reasons) == 7
    assert sum("HEAD" in r for r in reasons) == 1
    assert sum("script" in r for r in reasons) == 1
    assert sum("within seconds" in r for r in reasons) == 4
    assert sum("canary" in r for r in reasons) == 1


def test_opens_are_an_aggregate_count_with_a_caveat(
    sent: list[EmailMessage], client: httpx.Client, project: Path, example: Path, runner: CliRunner
) -> None:
    pixels = {
        re.search(r'src="https://news\.example\.org(/o/[^"]+)"', _html(m)).group(1) for m in sent
    }  # type: ignore[union-attr]
    assert len(pixels) == 1  # the same pixel in every copy: it cannot tell readers apart
    pixel = pixels.pop()
    assert client.get(pixel).headers["content-type"] == "image/gif"
    assert client.get(pixel.replace(".gif", "x.gif")).status_code == 400
    result = runner.invoke(app, ["report", str(example), "--json"])
    figures = json.loads(result.stdout)
    assert figures["opens"] == 1 and "Apple Mail" in figures["opens_caveat"]


@pytest.mark.sqlite_only  # the PostgreSQL schema mirrors it: test_postgres_schema.py
def test_click_table_has_no_subscriber_column(project: Path) -> None:
    conn = db.connect(project / "newsletter.db")
    assert {row[1] for row in conn.execute("PRAGMA table_info(opens)")} == {"issue", "opened_at"}
    columns = {row[1] for row in conn.execute("PRAGMA table_info(clicks)")}
    assert columns == {"id", "issue", "url", "clicked_at", "human", "reason"}
    assert not any("subscriber" in c or "email" in c or c == "ip" for c in columns)


def test_track_links_leaves_merge_tags_and_own_pages_alone() -> None:
    signer = LinkSigner(b"k")
    html = (
        '<a href="https://a.example/x">a</a>'
        '<a href="https://b.example/?e={{ subscriber.email }}">b</a>'
        f'<a href="{BASE}/unsubscribe/{{{{ unsubscribe_url }}}}">u</a>'
        '<img src="https://a.example/i.png"></body>'
    )
    text = "Read https://a.example/x. Or https://b.example/?e={{ subscriber.email }}\n"
    out_html, out_text = track_links(html, text, issue="i", base_url=BASE, signer=signer)
    wrapped = redirect_url(BASE, "i", signer.token("i", "https://a.example/x"))
    assert f'href="{wrapped}"' in out_html and f"Read {wrapped}." in out_text
    assert "https://b.example/?e={{ subscriber.email }}" in out_html
    assert "https://b.example/?e={{ subscriber.email }}" in out_text
    assert 'src="https://a.example/i.png"' in out_html
    assert f"{BASE}/unsubscribe/" in out_html
    assert signer.verify("i", signer.token("i", CANARY + "i")) == CANARY + "i"


def test_report_of_an_issue_sent_over_smtp_with_what_came_back(
    project: Path, example: Path, runner: CliRunner, smtp_project, tmp_path: Path
) -> None:
    _enable(project)
    emails = _add(project, 10)
    dead = set(emails[:2])
    sink = Sink(refuse=lambda address: "550 5.1.1 no such user" if address in dead else None)
    with running_sink(sink) as port:
        smtp_project(port)
        result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    copies = dict(sink.parsed())
    store = SubscriberStore.open(project / "newsletter.db")
    complainer = store.get(emails[2])
    assert complainer is not None
    store.set_status(complainer.id, Status.COMPLAINED, "abuse report", source="complaint",
                     issue=example.name)  # fmt: skip
    app_ = create_app(load_config(), _signer(project), send_mail=lambda to, data: None)
    with serving(app_) as url, httpx.Client(base_url=url, timeout=10) as http:
        for reader in emails[3:5]:
            header = str(copies[reader]["List-Unsubscribe"])
            link = re.search(r"<(https://[^>]+/unsubscribe/[^>]+)>", header)
            assert link is not None
            answer = http.post(_path(link.group(1)), data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
        _click_like_people_and_scanners(http, _html(copies[emails[5]]))
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(example), "--json", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["delivered"] == 8 and figures["failed"] == 2
    assert figures["hard_bounces"] == 2
    assert figures["complaints"] == 1 and figures["unsubscribes"] == 2
    assert figures["clicks_people"] == 1 and figures["clicks_bots"] == 7
    assert sum(hour["delivered"] for hour in figures["timeline"]) == 8
    assert figures["links"][0]["people"] == 1
    html = page.read_text()
    assert "<script" not in html and "<svg" in html and "http://" not in html.split("<body")[0]
    plain = runner.invoke(app, ["report", str(example)])
    assert "Delivered 8" in plain.stdout and "2 hard" in plain.stdout
    whole = runner.invoke(app, ["report", "--json"])
    weeks = json.loads(whole.stdout)["weeks"]
    assert sum(week.get("unsubscribed", 0) for week in weeks) == 2
    assert json.loads(whole.stdout)["totals"]["active"] == 5


@needs_chromium
def test_html_report_reads_on_a_phone(
    sent: list[EmailMessage], client: httpx.Client, example: Path, runner: CliRunner,
    tmp_path: Path,
) -> None:  # fmt: skip
    _click_like_people_and_scanners(client, _html(sent[0]))
    page = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(example), "--html", str(page)]).exit_code == 0
    probe = """<script>addEventListener("load", () => parent.postMessage(JSON.stringify({
      scrollWidth: document.documentElement.scrollWidth, viewport: innerWidth})));</script>"""
    measured = tmp_path / "measure.html"
    measured.write_text(page.read_text().replace("</body>", probe + "</body>"))
    figures = measure(measured, 375)
    assert figures["viewport"] == 375 and figures["scrollWidth"] <= 375
    shots = os.environ.get("NEWSLETTER_SCREENSHOTS")
    if shots:
        from newsletter.browser import screenshots

        screenshots(page.as_uri(), Path(shots), "report", (375, 650))
