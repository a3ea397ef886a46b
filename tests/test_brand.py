"""Brand settings: the logo's width, the date in the newsletter's language, the dark-mode accent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import build_issue
from newsletter.compose.colours import DARK_BACKGROUND, DARK_CARD, contrast, dark_variant
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.publish.archive import build_archive


def _configure(project: Path, brand: str = "", language: str = "en") -> None:
    """Set the language and one `key = value` of the [brand] table in the project's config."""
    config = project / "newsletter.toml"
    text = config.read_text().replace('language = "en"', f'language = "{language}"')
    if brand:
        text = re.sub(rf"(?m)^{brand.split()[0]} = .*\n", "", text)
    config.write_text(text.replace("[brand]\n", f"[brand]\n{brand}\n"))


def _html(example: Path) -> str:
    config = load_config(example.parent.parent / "newsletter.toml")
    return build_issue(load_issue(example), config).html


def _dark_rules(html: str) -> str:
    return html[html.index("prefers-color-scheme: dark") :]


def test_logo_width(project: Path, example: Path) -> None:
    assert 'width="200"' in str(BeautifulSoup(_html(example), "html.parser").find("img"))
    _configure(project, "logo_width = 120")
    logo = BeautifulSoup(_html(example), "html.parser").find("img")
    assert logo["width"] == "120"
    assert "logo" in logo["src"]


def test_logo_is_prepared_at_twice_its_width(project: Path, example: Path) -> None:
    Image.new("RGBA", (1600, 400), (0, 0, 0, 0)).save(project / "assets" / "logo.png")
    _configure(project, "logo_width = 150")
    config = load_config(project / "newsletter.toml")
    built = build_issue(load_issue(example), config)
    logo = next(asset for asset in built.assets if asset.src == "assets/logo.png")
    assert (logo.width, logo.height) == (300, 75)


@pytest.mark.parametrize(
    ("language", "date_format", "shown"),
    [
        ("en", "d MMMM y", "24 November 2026"),
        ("fr", "d MMMM y", "24 novembre 2026"),
        ("de", "long", "24. November 2026"),
        ("pt-BR", "full", "terça-feira, 24 de novembro de 2026"),
        ("en", "EEEE d MMM", "Tuesday 24 Nov"),
    ],
)
def test_date_in_the_brand_format_and_language(
    project: Path, example: Path, language: str, date_format: str, shown: str
) -> None:
    _configure(project, f'date_format = "{date_format}"', language)
    html = _html(example)
    assert f">{shown}<" in html
    config = load_config(project / "newsletter.toml")
    assert shown in build_issue(load_issue(example), config).text.splitlines()[0]


def test_the_archive_shows_the_same_date(project: Path, example: Path) -> None:
    _configure(project, 'date_format = "d MMMM y"', "fr")
    config = load_config(project / "newsletter.toml")
    archive = build_archive(config, [load_issue(example)])
    assert [entry.long_date for entry in archive.entries] == ["24 novembre 2026"]
    assert "24 novembre 2026" in dict(archive.files)["index.html"]


def test_unknown_language_is_named(project: Path, example: Path, runner: CliRunner) -> None:
    _configure(project, language="xx")
    result = runner.invoke(app, ["build", str(example)])
    assert result.exit_code == 2
    assert "language" in result.stderr and "unknown language 'xx'" in result.stderr


def test_dark_accent_is_derived_from_the_accent(project: Path, example: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace('accent = "#c2410c"', 'accent = "#1d6f5f"'))
    dark = _dark_rules(_html(example))
    assert "#fdba74" not in dark
    derived = dark_variant("#1d6f5f")
    assert f"color: {derived} !important" in dark
    assert contrast(derived, DARK_CARD) >= 4.5 and contrast(derived, DARK_BACKGROUND) >= 4.5
    hue = re.fullmatch(r"#(..)(..)(..)", derived)
    assert hue and int(hue[2], 16) > int(hue[1], 16)  # still green-teal, not orange


def test_dark_accent_can_be_set(project: Path, example: Path) -> None:
    _configure(project, 'dark_accent = "#aabbcc"')
    assert "color: #aabbcc !important" in _dark_rules(_html(example))


@pytest.mark.parametrize("accent", ["#c2410c", "#1d6f5f", "#0000ff", "#000000", "#ffcc00"])
def test_derived_accents_read_on_dark_mode_backgrounds(accent: str) -> None:
    derived = dark_variant(accent)
    assert contrast(derived, DARK_CARD) >= 4.5
    assert contrast(derived, DARK_BACKGROUND) >= 4.5
