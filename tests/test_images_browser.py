"""Images and text as Chromium draws them at 375 and 650 px: no image squashed, no text tiny.

Two issues are measured: the repository's example, and one whose images are portrait, square
and panorama, in every place an image can go (hero, story figures, teaser cards).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
from browser_measure import measure, needs_chromium
from PIL import Image

from newsletter.browser import chromium
from newsletter.compose.build import build_issue, local_preview
from newsletter.compose.issues import load_issue
from newsletter.config import load_config
from newsletter.publish.writer import write_build

pytestmark = needs_chromium
#: Set (`make screenshots` does) to write the README's pictures of the example into this folder.
SHOTS = os.environ.get("NEWSLETTER_SCREENSHOTS")

#: What the page posts: every image's drawn and natural size, and every visible text under 13 px.
MEASURE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].filter(i => i.checkVisibility()).map(i => {
    const box = i.getBoundingClientRect();
    return {src: i.getAttribute("src"), width: box.width, height: box.height,
            naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight};
  });
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.checkVisibility(
        {opacityProperty: true, visibilityProperty: true})) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    if (!range.getClientRects().length) continue;
    const size = parseFloat(getComputedStyle(element).fontSize);
    if (size < 13) small.push({text: node.textContent.trim().slice(0, 40), size: size});
  }
  parent.postMessage(JSON.stringify({images: images, small: small}));
});
</script>"""

SHAPES = {"portrait.jpg": (900, 1350), "square.png": (800, 800), "panorama.jpg": (3000, 750)}

SHAPES_ISSUE = """\
---
subject: "Shapes"
preheader: "Tall, square and wide pictures in every place"
date: 2026-11-24
lead:
  title: "Every shape of picture"
  image:
    src: images/portrait.jpg
    alt: "A tall picture"
teasers:
  - label: Tall
    title: "A portrait teaser"
    summary: "A portrait picture beside the text."
    url: "https://example.org/a"
    image: {src: images/portrait.jpg, alt: "A tall picture"}
  - label: Square
    title: "A square teaser"
    summary: "A square picture beside the text."
    url: "https://example.org/b"
    image: {src: images/square.png, alt: "A square picture"}
  - label: Wide
    title: "A panorama teaser"
    summary: "A panorama beside the text."
    url: "https://example.org/c"
    image: {src: images/panorama.jpg, alt: "A wide picture"}
---
A square figure:

![A square picture](images/square.png "Square | Credit")

A panorama figure:

![A wide picture](images/panorama.jpg)

A portrait inline ![A tall picture](images/portrait.jpg) in a sentence.
"""


def _page(built_dir: Path) -> Path:
    page = built_dir / "measure.html"
    html = (built_dir / "preview.html").read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    return page


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example and the shapes issue, built into preview pages that measure themselves."""
    from conftest import EXAMPLE_SLUG, REPO

    root = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "newsletter.toml", root)
    shutil.copytree(REPO / "assets", root / "assets")
    shutil.copytree(REPO / "issues" / EXAMPLE_SLUG, root / "issues" / EXAMPLE_SLUG)
    shapes = root / "issues" / "shapes"
    (shapes / "images").mkdir(parents=True)
    for name, size in SHAPES.items():
        Image.new("RGB", size, (40, 120, 90)).save(shapes / "images" / name)
    (shapes / "issue.md").write_text(textwrap.dedent(SHAPES_ISSUE), encoding="utf-8")
    config = load_config(root / "newsletter.toml")
    pages = {}
    for folder in (root / "issues" / EXAMPLE_SLUG, shapes):
        built = build_issue(load_issue(folder), config)
        out = write_build(built, root / "build" / built.slug, local_preview(built))
        pages[folder.name] = _page(out)
    return pages


@pytest.mark.parametrize("width", [375, 650])
@pytest.mark.parametrize("issue", ["example", "shapes"])
def test_every_image_keeps_its_aspect_ratio(pages: dict[str, Path], issue: str, width: int) -> None:
    page = next(path for name, path in pages.items() if (issue == "shapes") == (name == "shapes"))
    images = measure(page, width)["images"]
    assert len(images) == 8  # with the logo
    for image in images:
        assert image["naturalWidth"] > 0, f"{image['src']} did not load"
        drawn = image["width"] / image["height"]
        natural = image["naturalWidth"] / image["naturalHeight"]
        assert drawn == pytest.approx(natural, rel=0.02), image
        assert image["width"] <= width


def test_the_hero_is_375_by_211_on_a_phone(pages: dict[str, Path]) -> None:
    example = next(path for name, path in pages.items() if name != "shapes")
    hero = next(i for i in measure(example, 375)["images"] if "hero" in i["src"])
    assert (hero["width"], round(hero["height"])) == (375, 211)


@pytest.mark.parametrize("issue", ["example", "shapes"])
def test_no_visible_text_is_under_13_px_on_a_phone(pages: dict[str, Path], issue: str) -> None:
    page = next(path for name, path in pages.items() if (issue == "shapes") == (name == "shapes"))
    assert measure(page, 375)["small"] == []


def test_readme_screenshots_show_undistorted_images(pages: dict[str, Path]) -> None:
    """The example at 650 px (its top) and at 375 px (the teaser cards), as in the README."""
    example = next(path for name, path in pages.items() if name != "shapes")
    preview = (example.parent / "preview.html").as_uri()
    with chromium() as browser:
        for width, name in [(650, "email-650"), (375, "email-375-cards")]:
            page = browser.new_page(viewport={"width": width, "height": 1300})
            page.goto(preview, wait_until="load")
            for image in page.locator("img").all():
                box = image.bounding_box()
                natural = image.evaluate("i => i.naturalWidth / i.naturalHeight")
                assert box and box["width"] / box["height"] == pytest.approx(natural, rel=0.02)
            top = 0.0
            if width == 375:
                label = page.get_by_text("MORE STORIES").bounding_box()
                assert label is not None
                top = label["y"] - 20
            if SHOTS:
                clip = {"x": 0, "y": top, "width": width, "height": 1300 if width == 650 else 1200}
                page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), clip=clip, full_page=True)
            page.close()
