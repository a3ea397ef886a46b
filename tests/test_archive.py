"""`newsletter archive`: a web page per issue, an index newest first, an Atom feed."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

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
from newsletter.publish.writer import MARKER

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
        publish: true
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
        publish: true
        lead:
          title: "The first headline"
        """,
        slug=OLDER,
    )
    return {
        NEWER: "A second look at <things> & more",  # nobody's name, not even "friend"
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
    names = sorted(p.name for p in site.iterdir())
    assert names == sorted(["index.html", "feed.xml", "images", MARKER, *SLUGS])
    for path in [site / "index.html", *(site / slug / "index.html" for slug in SLUGS)]:
        page = soup_of(path)
        sources = [img["src"] for img in page.find_all("img")]
        assert sources, path
        for src in sources:  # every image the page shows is published with the site
            assert not src.startswith(("http:", "https:", "/")), src
            assert (path.parent / src).resolve().is_file(), src
    assert (site / NEWER / "images" / "cover.png").is_file()
    assert (site / "images" / "brand" / "assets" / "logo.png").is_file()


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


def test_pages_are_web_pages_not_the_email(site: Path, issues: dict[str, str]) -> None:
    config = load_config()
    for slug in SLUGS:
        html = (site / slug / "index.html").read_text(encoding="utf-8")
        page = BeautifulSoup(html, "html.parser")
        text = page.get_text(" ", strip=True)
        assert "{{" not in html, slug
        assert page.title.get_text() == issues[slug]
        hrefs = [a["href"] for a in page.find_all("a", href=True)]
        assert not [h for h in hrefs if "/unsubscribe" in h or "/preferences" in h], slug
        for chrome in ("View in browser", "Unsubscribe", "Manage preferences", config.reason):
            assert chrome not in text, (slug, chrome)
        [signup] = page.find_all("form")
        assert signup["action"] == f"{BASE}/subscribe" and signup["method"] == "post"
        assert signup.find("input", attrs={"name": "email", "type": "email"})
        assert signup.find("input", attrs={"name": "website"})  # the honeypot
    newer = soup_of(site / NEWER / "index.html").get_text(" ", strip=True)
    assert "Hi friend, this went to ." in newer  # no one's address
    assert "Hi friend," in soup_of(site / EXAMPLE_SLUG / "index.html").get_text()


def meta(page: BeautifulSoup, key: str) -> str:
    tag = page.find("meta", attrs={"property": key}) or page.find("meta", attrs={"name": key})
    assert tag is not None, key
    return str(tag["content"])


def test_pages_have_meta_tags_canonical_url_and_neighbours(
    site: Path, issues: dict[str, str]
) -> None:
    for number, slug in enumerate(SLUGS):
        page = soup_of(site / slug / "index.html")
        url = f"{BASE}/{slug}/"
        assert page.find("link", rel="canonical")["href"] == url
        assert meta(page, "og:url") == url and meta(page, "og:type") == "article"
        assert meta(page, "og:title") == meta(page, "twitter:title") == issues[slug]
        description = meta(page, "description")
        assert description and description == meta(page, "og:description")
        assert meta(page, "og:image").startswith(f"{BASE}/")
        assert meta(page, "twitter:card") in ("summary", "summary_large_image")
        around = {a["rel"][0]: a for a in page.select("nav.around a")}
        if number > 0:
            assert around["next"]["href"] == f"../{SLUGS[number - 1]}/"
            assert issues[SLUGS[number - 1]] in around["next"].get_text()
        if number + 1 < len(SLUGS):
            assert around["prev"]["href"] == f"../{SLUGS[number + 1]}/"
        assert set(around) == {"prev", "next"} - ({"next"} if number == 0 else set()) - (
            {"prev"} if number == len(SLUGS) - 1 else set()
        )
    example = soup_of(site / EXAMPLE_SLUG / "index.html")
    assert meta(example, "description").startswith("Paris acts while Washington says nothing.")
    assert meta(example, "twitter:card") == "summary_large_image"
    assert meta(example, "og:image") == f"{BASE}/{EXAMPLE_SLUG}/images/hero.png"


def test_index_is_the_public_home(site: Path) -> None:
    config = load_config()
    index = soup_of(site / "index.html")
    assert index.select_one("header.masthead img")["alt"] == config.name
    assert config.description in index.get_text()
    assert meta(index, "description") == config.description
    [signup] = index.find_all("form")
    assert signup["action"] == f"{BASE}/subscribe"


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
        "left_out": 0,
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

    folder = write_issue(front="publish: true\n" + MINIMAL_FRONT + extra, slug="broken")
    result = runner.invoke(app, ["archive"])
    assert result.exit_code == 2
    assert f"Error: {folder / 'issue.md'}" in result.stderr
    assert message in result.stderr
    assert not (project / "site").exists()


@needs_chromium
@pytest.mark.parametrize(
    "path", ["index.html", f"{OLDER}/index.html", f"{EXAMPLE_SLUG}/index.html"]
)
def test_pages_have_no_horizontal_scroll_on_a_phone(site: Path, path: str) -> None:
    report = """<script>addEventListener("load", () => parent.postMessage(JSON.stringify({
      scrollWidth: document.documentElement.scrollWidth, viewport: innerWidth})));</script>"""
    page = (site / path).parent / "measure.html"
    page.write_text((site / path).read_text().replace("</body>", report + "</body>"))
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
        urls += [str(form["action"]) for form in soup.find_all("form")]
        ours = {urljoin(f"{BASE}/{NEWER}/", u) for u in urls}
        for path in {u.removeprefix(BASE) for u in ours if u.startswith(BASE)}:
            assert client.get(path).status_code == 200, path  # subscribe, neighbours, images
        assert client.get("/").text == (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("subject", "neutral"),
    [
        ('{{ subscriber.first_name | default("Neighbor") }}, good news', "Good news"),
        ("Hi {{ subscriber.first_name }}! The week in brief", "The week in brief"),
        ("Thanks, {{ subscriber.first_name | default('friend') }}!", "Thanks!"),
        ("News for {{ subscriber.email }} today", "News for today"),
        ("Read it online: {{ web_url }}", "Read it online: {{ web_url }}"),
        ("No tags at all", "No tags at all"),
    ],
)
def test_subjects_lose_the_personal_greeting(subject: str, neutral: str) -> None:
    from newsletter.publish.pages import impersonal

    assert impersonal(subject) == neutral
