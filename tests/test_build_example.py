"""The example issue builds into an email with the right structure, size and safety."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import GMAIL_CLIP_BYTES, BuiltIssue, build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config


@pytest.fixture
def built(example: Path) -> BuiltIssue:
    return build_issue(load_issue(example), load_config())


@pytest.fixture
def soup(built: BuiltIssue) -> BeautifulSoup:
    return BeautifulSoup(built.html, "html.parser")


def test_cli_build_writes_every_file(runner: CliRunner, example: Path, project: Path) -> None:
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 0, result.stderr
    out = project / "build" / example.name
    for name in ("index.html", "index.txt", "index.mjml", "preview.html"):
        assert (out / name).stat().st_size > 1000, name
    assert str(out / "index.html") in result.stdout
    hero = out / "images" / "hero.png"
    assert hero.read_bytes() == (example / "images" / "hero.png").read_bytes()
    assert (out / "images" / "brand" / "assets" / "logo.png").is_file()
    assert (out / "index.mjml").read_text().lstrip().startswith("<mjml")


def test_build_json_reports_paths_and_size(
    runner: CliRunner, example: Path, tmp_path: Path
) -> None:
    import json

    result = runner.invoke(app, ["build", str(example), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files"]["index.html"] == str(tmp_path / "o" / "index.html")
    assert 10_000 < data["html_bytes"] < GMAIL_CLIP_BYTES
    assert data["warnings"] == []


def test_document_basics(soup: BeautifulSoup, built: BuiltIssue) -> None:
    assert built.html.lower().startswith("<!doctype html>")
    assert soup.html["lang"] == "en"
    assert soup.title.string == "France opens its doors to gay men fleeing Chechnya"
    meta = soup.find("meta", attrs={"name": "color-scheme"})
    assert meta and meta["content"] == "light dark"
    assert soup.find("meta", attrs={"name": "viewport"})


def test_hidden_preheader_is_first_in_body(soup: BeautifulSoup) -> None:
    hidden = soup.body.find("div", class_="nl-preheader")
    assert "display:none" in hidden["style"].replace(" ", "")
    assert "color" not in hidden["style"]  # no low-contrast text for spam filters to score
    assert hidden.get_text().startswith("Paris acts while Washington says nothing.")
    assert soup.body.get_text(strip=True).startswith(hidden.get_text())


def test_lead_story(soup: BeautifulSoup) -> None:
    h1 = soup.find_all("h1")
    assert [h.get_text() for h in h1] == [
        "Paris shelters the first gay refugee from Chechnya as the White House stays quiet"
    ]
    text = soup.get_text(" ")
    assert "By Maren Okafor" in text
    assert soup.find("ol") and len(soup.find_all("ul")) >= 1
    assert soup.find("blockquote")
    assert "Supporters have rallied in Paris" in text  # a figure caption
    cta = soup.find("a", string=re.compile("Read the whole story"))
    assert cta["href"] == "https://example.org/stories/france-welcomes-chechen-refugees"


def test_four_teaser_cards_with_accessible_links(soup: BeautifulSoup) -> None:
    links = soup.find_all("a", string=re.compile("Keep reading"))
    assert len(links) == 4
    labels = [a["aria-label"] for a in links]
    assert len(set(labels)) == 4
    assert labels[0] == "Keep reading: The heating engineer who billed a 91-year-old nothing at all"
    for label in ("Heroes", "Family", "Planet", "Guns"):
        assert soup.find("p", string=label)


def test_every_image_has_alt_and_a_size(soup: BeautifulSoup) -> None:
    images = soup.find_all("img")
    assert len(images) == 8  # logo, hero, two figures, four cards
    for img in images:
        assert img.get("alt"), img
        assert img["src"].startswith("https://news.example.org/"), img["src"]
        assert img.get("width"), img


def test_image_dimensions_come_from_the_files(built: BuiltIssue, example: Path) -> None:
    hero = next(a for a in built.assets if a.src == "images/hero.png")
    with Image.open(example / "images" / "hero.png") as image:
        assert (hero.width, hero.height) == image.size
    assert hero.url == f"https://news.example.org/{example.name}/images/hero.png"


def test_footer_has_address_and_unsubscribe_placeholder(soup: BeautifulSoup) -> None:
    text = soup.get_text(" ")
    assert "18 Harbour Lane, Bristol BS1 4RN" in text
    assert "You are receiving this because" in text
    unsubscribe = soup.find("a", string="Unsubscribe")
    assert unsubscribe["href"] == "{{ unsubscribe_url }}"
    assert soup.find("a", string="Manage preferences")["href"] == "{{ preferences_url }}"
    assert soup.find("a", string="View in browser")["href"] == "{{ web_url }}"


def test_css_is_inlined_but_media_queries_stay(built: BuiltIssue, soup: BeautifulSoup) -> None:
    styles = " ".join(s.get_text() for s in soup.find_all("style"))
    assert "@media only screen and (min-width:480px)" in styles.replace(": ", ":")
    assert "prefers-color-scheme: dark" in styles
    assert "width: 100% !important" in styles  # premailer must keep MJML's !important
    h2 = soup.find("h2")
    assert "font-size:23px" in h2["style"].replace(" ", "")
    assert ".nl-text h2" not in styles.split("@media")[0]  # plain rules were inlined away


def test_outlook_conditional_comments_are_kept(built: BuiltIssue) -> None:
    assert "<!--[if mso | IE]>" in built.html
    assert "<!--[if mso]>" in built.html


def test_no_web_fonts_or_network_links(built: BuiltIssue) -> None:
    assert "fonts.googleapis.com" not in built.html
    assert "<link" not in built.html


def test_size_is_under_gmail_clip(built: BuiltIssue) -> None:
    assert built.html_bytes < GMAIL_CLIP_BYTES
    assert not built.warnings


def test_dark_mode_overrides_every_text_colour(built: BuiltIssue) -> None:
    dark = built.html.split("prefers-color-scheme: dark", 1)[1].split("@media", 1)[0]
    for selector in (".nl-text p", ".nl-text li", ".nl-text h1", ".nl-text a", ".nl-muted"):
        assert selector in dark, selector
    assert "!important" in dark
    assert "[data-ogsc] .nl-text p" in built.html  # Outlook.com's dark mode, kept verbatim


def test_size_warnings_thresholds() -> None:
    from newsletter.compose.build import WARN_BYTES, size_warnings

    assert size_warnings(WARN_BYTES) == []
    assert "close to Gmail's 102 KB clipping limit" in size_warnings(WARN_BYTES + 1)[0]
    assert "Gmail clips messages over 102 KB" in size_warnings(GMAIL_CLIP_BYTES + 1)[0]


def test_build_warns_about_a_large_issue(
    runner: CliRunner, write_issue: Callable[..., Path]
) -> None:
    paragraph = "A sentence that takes up room in the email and then some more. " * 12
    folder = write_issue(body="\n\n".join([paragraph] * 110))
    result = runner.invoke(app, ["build", str(folder)])
    assert result.exit_code == 0
    assert "Warning: the HTML is" in result.stderr and "Gmail" in result.stderr
    assert runner.invoke(app, ["build", str(folder), "--strict"]).exit_code == 1


def test_config_is_found_from_the_issue_folder(
    runner: CliRunner, example: Path, project: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 0, result.stderr
    assert (project / "build" / example.name / "index.html").is_file()
