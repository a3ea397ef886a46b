"""Headless Chromium, driven through Playwright: the email as phones and desktops show it.

Playwright's own browser downloads are not used: it drives the system's Chromium (Debian's
`chromium` package, or the path in NEWSLETTER_CHROMIUM), so nothing is fetched at run time.
Playwright itself is the optional extra `newsletter[browser]`: without it, the commands that
need a browser (`screenshot`, `check --render`) stop with a one-line hint naming the extra.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import BrowserError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: The widths an email is looked at: a phone and a desktop mail client's reading pane.
WIDTHS: tuple[int, ...] = (375, 650)
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "Chromium is not installed: install it with 'apt-get install chromium' (Debian/Ubuntu) "
    "or set NEWSLETTER_CHROMIUM to a Chromium or Chrome executable"
)
EXTRA_HINT = (
    "this needs the browser automation, an optional part: "
    "install it with: pip install 'newsletter[browser]'"
)


def find_chromium() -> str | None:
    """The Chromium executable to use, if there is one."""
    configured = os.environ.get("NEWSLETTER_CHROMIUM")
    if configured:
        return configured
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for name in names if (path := shutil.which(name))), None)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the duration of the block."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise BrowserError(EXTRA_HINT) from None
    executable = find_chromium()
    if executable is None:
        raise BrowserError(INSTALL_HINT)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=_ARGS)
        except Error as exc:
            raise BrowserError(f"Chromium at {executable} did not start: {exc.message}") from None
        try:
            yield browser
        finally:
            browser.close()


def _at_widths(page_url: str, widths: Sequence[int]) -> Iterator[tuple[int, Page]]:
    """`page_url` loaded in one viewport per width, in turn."""
    with chromium() as browser:
        from playwright.sync_api import Error  # loaded by chromium()

        for width in widths:
            page = browser.new_page(viewport={"width": width, "height": 800})
            try:
                page.goto(page_url, wait_until="load")
                yield width, page
            except Error as exc:
                raise BrowserError(f"cannot render {page_url}: {exc.message}") from None
            finally:
                page.close()


def screenshots(
    page_url: str, out_dir: Path, name: str, widths: Sequence[int] = WIDTHS
) -> list[Path]:
    """Full-page PNGs of `page_url`, one per width, as `out_dir/<name>-<width>.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for width, page in _at_widths(page_url, widths):
        path = out_dir / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    return paths


def content_widths(page_url: str, widths: Sequence[int] = WIDTHS) -> dict[int, int]:
    """How wide the page's content is at each viewport width (wider: it scrolls sideways)."""
    return {
        width: int(page.evaluate("document.documentElement.scrollWidth"))
        for width, page in _at_widths(page_url, widths)
    }
