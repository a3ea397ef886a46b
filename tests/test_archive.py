"""`newsletter archive`: a web page per issue, an index newest first, an Atom feed."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import html5lib
import pytest
from browser_measure import measure, needs_chromium
from bs4 import BeautifulSoup
from conftest import EXAMPLE_SLUG
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.deliver.message import MessageFactory, Recipient
from newsletter.deliver.tokens import Signer
from newsletter.publish.archive import build_archive

BASE = "https://news.example.org"
NEWER = "2026-12-08-a-second-look"
OLDER = "2026-10-01-the-first-one"
#: Newest first, as the index and the feed list them.
SLUGS = [NEWER, EXAMPLE_SLUG, OLDER]
LONG_WORD = "Supercalifragilisticexpialidocious" * 3


@pytest.fixture
def issues(example: Path, write_issue: Callable[..., Path]) -> dict[str, str]:
    """The example issue plus two small ones around it; returns each slug's subject."""
    newer = write_issue(
        front="""\
        subject: '{{ subscriber.first_name | default("friend") }}, a second look at <things> & more'
        preheader: "Tags <b>stay</b> text"
        date: 2026-12-08
        lead:
          title: "A second headline"
          image:
            src: images/cover.png
            alt: "A cover"
        """,
        body="""\
        Hi {{ subscriber.first_name | default("friend") }}, this went to {{ subscriber.email }}.

        [Leave]({{ unsubscribe_url }}) or [read it online]({{ web_url }}).
        """,
        slug=NEWER,
    )
    shutil.copy(example / "images" / "hero.png", newer / "images" / "cover.png")
    write_issue(
        front=f"""\
        subject: "The first one: {LONG_WORD}"
        preheader: "Where it all began"
        date: 2026-10-01
        lead:
          title: "The first headline"
        """,
        slug=OLDER,
    )
    return {
        NEWER: "friend, a second look at <things> & more",
        EXAMPLE_SLUG: "France opens its doors to gay men fleeing Chechnya",
        OLDER: f"The first one: {LONG_WORD}",
    }


@pytest.fixture
def site(runner: CliRunner, project: Path, issues: dict[str, str]) -> Path:
    result = runner.invoke(app, ["archive"])
    assert result.exit_code == 0, result.stderr
    assert "Archived 3 issues" in result.stdout
    assert str(project / "site" / "index.html") in result.stdout
    return project / "site"


def soup_of(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_site_has_index_feed_and_a_page_with_its_images_per_issue(site: Path) -> None:
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html", "feed.xml", *SLUGS])
    for slug in SLUGS:
        page = soup_of(site / slug / "index.html")
        sources = [img["src"] for img in page.find_all("img")]
        assert sources, slug
        for src in sources:  # every image the page shows is published beside it
            assert src.startswith(f"{BASE}/{slug}/images/"), src
            assert (site / src.removeprefix(f"{BASE}/")).is_file(), src
    assert (site / NEWER / "images" / "cover.png").is_file()


def test_index_lists_every_issue_newest_first(site: Path, issues: dict[str, str]) -> None:
    index = soup_of(site / "index.html")
    assert index.html["lang"] == "en"
    assert index.find("meta", attrs={"name": "viewport"})
    items = index.select("ol.issues > li")
    assert [item.a["href"] for item in items] == [f"{slug}/" for slug in SLUGS]
    assert [item.a.get_text() for item in items] == [issues[slug] for slug in SLUGS]
    assert [item.time["datetime"] for item in items] == ["2026-12-08", "2026-11-24", "2026-10-01"]
    assert items[1].time.get_text() == "24 November 2026"
    assert items[0].p.get_text() == "Tags <b>stay</b> text"  # escaped, shown as written
    assert items[2].p.get_text() == "Where it all began"


def test_pages_are_neutral_web_copies(site: Path, issues: dict[str, str]) -> None:
    for slug in SLUGS:
        html = (site / slug / "index.html").read_text(encoding="utf-8")
        page = BeautifulSoup(html, "html.parser")
        assert "{{" not in html, slug
        assert page.title.get_text() == issues[slug]
        hrefs = [a["href"] for a in page.find_all("a", href=True)]
        assert not [h for h in hrefs if "/unsubscribe" in h or "/preferences" in h], slug
        assert page.find("a", string="Unsubscribe")["href"] == f"{BASE}/subscribe"
        assert page.find("a", string="Manage preferences")["href"] == f"{BASE}/subscribe"
        for link in page.find_all("a", string="View in browser"):
            assert link["href"] == f"{BASE}/{slug}/"
    newer = soup_of(site / NEWER / "index.html").get_text(" ", strip=True)
    assert "Hi friend, this went to ." in newer  # no one's address
    assert "Hi friend," in soup_of(site / EXAMPLE_SLUG / "index.html").get_text()


def test_view_in_browser_in_every_email_is_the_issue_page(site: Path, project: Path) -> None:
    config = load_config()
    for slug in SLUGS:
        built = build_issue(load_issue(project / "issues" / slug), config)
        copy = MessageFactory(built, config, Signer(b"k")).render(Recipient("ada@example.org"))
        message = email.message_from_bytes(copy.data, policy=email.policy.default)
        html = message.get_body(preferencelist=("html",)).get_content()
        link = BeautifulSoup(html, "html.parser").find("a", string="View in browser")["href"]
        assert link == f"{BASE}/{slug}/"
        assert (site / link.removeprefix(f"{BASE}/") / "index.html").is_file()


def test_index_and_pages_are_valid_html5(site: Path) -> None:
    for path in [site / "index.html", *(site / slug / "index.html" for slug in SLUGS)]:
        parser = html5lib.HTMLParser(strict=True)
        parser.parse(path.read_bytes())  # raises on the first parse error
        assert parser.errors == [], path


def test_feed_parses_with_entries_newest_first(site: Path, issues: dict[str, str]) -> None:
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "The Bright Side"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"self": f"{BASE}/feed.xml", "alternate": f"{BASE}/"}
    assert feed.feed.updated_parsed[:3] == (2026, 12, 8)
    assert [entry.title for entry in feed.entries] == [issues[slug] for slug in SLUGS]
    assert [entry.link for entry in feed.entries] == [f"{BASE}/{slug}/" for slug in SLUGS]
    assert [entry.id for entry in feed.entries] == [f"{BASE}/{slug}/" for slug in SLUGS]
    dates = [time.strftime("%Y-%m-%d", entry.updated_parsed) for entry in feed.entries]
    assert dates == ["2026-12-08", "2026-11-24", "2026-10-01"]
    assert feed.entries[1].summary.startswith("Paris acts while Washington says nothing.")
    content = feed.entries[1].content[0]
    assert content.type == "text/html"
    assert "Paris shelters the first gay refugee" in content.value
    assert "{{" not in content.value


def test_archive_without_issues_is_an_empty_index_and_feed(project: Path) -> None:
    archive = build_archive(load_config(), [])
    files = dict(archive.files)
    assert sorted(files) == ["feed.xml", "index.html"]
    assert "No issues yet." in files["index.html"]
    feed = feedparser.parse(files["feed.xml"].encode())
    assert feed.bozo == 0
    assert feed.entries == []


def test_json_reports_the_site(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["archive", "--out", str(tmp_path / "web"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "issues": 1,
        "rebuilt": 1,
        "out": str(tmp_path / "web"),
        "index": str(tmp_path / "web" / "index.html"),
        "feed": str(tmp_path / "web" / "feed.xml"),
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  image:\n    src: images/gone.png\n    alt: x\n", "image file 'images/gone.png'"),
        ("template: missing.mjml.j2\n", "template 'missing.mjml.j2' not found"),
    ],
)
def test_an_issue_that_fails_is_named_and_nothing_is_written(
    runner: CliRunner,
    project: Path,
    write_issue: Callable[..., Path],
    extra: str,
    message: str,
) -> None:
    from conftest import MINIMAL_FRONT

    folder = write_issue(front=MINIMAL_FRONT + extra, slug="broken")
    result = runner.invoke(app, ["archive"])
    assert result.exit_code == 2
    assert f"Error: {folder / 'issue.md'}" in result.stderr
    assert message in result.stderr
    assert not (project / "site").exists()


@needs_chromium
def test_index_has_no_horizontal_scroll_on_a_phone(site: Path) -> None:
    report = """<script>addEventListener("load", () => parent.postMessage(JSON.stringify({
      scrollWidth: document.documentElement.scrollWidth, viewport: innerWidth})));</script>"""
    page = site / "measure.html"
    page.write_text((site / "index.html").read_text().replace("</body>", report + "</body>"))
    figures = measure(page, 375)
    assert figures["viewport"] == 375
    assert figures["scrollWidth"] <= 375


def test_newsletter_serve_serves_the_site_and_its_links(site: Path) -> None:
    import httpx
    from web_server import serving

    from newsletter.web.app import create_app

    app_ = create_app(load_config(), Signer(b"k"), send_mail=lambda to, data: None)
    with serving(app_) as url, httpx.Client(base_url=url, timeout=10) as client:
        page = client.get(f"/{NEWER}/")
        assert page.text == (site / NEWER / "index.html").read_text(encoding="utf-8")
        soup = BeautifulSoup(page.text, "html.parser")
        urls = [a["href"] for a in soup.find_all("a")] + [i["src"] for i in soup.find_all("img")]
        for path in {u.removeprefix(BASE) for u in urls if u.startswith(BASE)}:
            assert client.get(path).status_code == 200, path  # subscribe, itself, its images
        assert client.get("/").text == (site / "index.html").read_text(encoding="utf-8")
