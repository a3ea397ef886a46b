"""The email's layout measured in a real headless Chromium at phone and desktop widths."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_measure import measure, needs_chromium

from newsletter.compose.build import build_issue, local_preview
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.publish.writer import write_build

pytestmark = needs_chromium

MEASURE = """<script>
window.addEventListener("load", () => {
  const cards = [...document.querySelectorAll("a[aria-label^='Keep reading']")];
  const img = [...document.querySelectorAll("img")].find(i => i.src.includes("heroes"));
  const text = cards[0].closest("div[class*='mj-column-per-60']");
  parent.postMessage(JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    cardImageLeft: img.getBoundingClientRect().left,
    cardImageBottom: img.getBoundingClientRect().bottom,
    cardTextTop: text.getBoundingClientRect().top,
    cardTextLeft: text.getBoundingClientRect().left,
    bodyWidth: document.querySelector("div[role=article] > div:not(.nl-preheader)")
      .getBoundingClientRect().width,
  }));
});
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import EXAMPLE_SLUG, REPO

    config = load_config(REPO / "newsletter.toml")
    built = build_issue(load_issue(REPO / "issues" / EXAMPLE_SLUG), config)
    out = write_build(built, tmp_path_factory.mktemp("b") / "out", local_preview(built))
    page = out / "measure.html"
    page.write_text((out / "preview.html").read_text().replace("</body>", MEASURE + "</body>"))
    return page


def test_phone_375_is_one_column_without_horizontal_scroll(page: Path) -> None:
    figures = measure(page, 375)
    assert figures["viewport"] == 375
    assert figures["scrollWidth"] <= 375
    assert figures["cardTextTop"] >= figures["cardImageBottom"]  # text stacked under image
    assert figures["bodyWidth"] <= 375


def test_desktop_is_600_wide_with_image_beside_text(page: Path) -> None:
    figures = measure(page, 800)
    assert figures["viewport"] == 800
    assert figures["scrollWidth"] <= 800
    assert figures["bodyWidth"] == 600
    assert figures["cardTextLeft"] > figures["cardImageLeft"]
    assert figures["cardTextTop"] < figures["cardImageBottom"]  # side by side
