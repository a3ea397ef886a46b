"""Measuring a page in a real headless Chromium at a given width (shared by the browser tests).

The page reports its figures itself: a script in it calls `parent.postMessage(JSON.stringify(
{...}))` on load, and `measure` returns that object.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

FRAME = """<!doctype html><body style="margin:0" data-measure=""><iframe src="{src}"
width="{width}" height="900" style="border:0"></iframe><script>
addEventListener("message", e => document.body.setAttribute("data-measure", e.data));
</script></body>"""


def measure(page: Path, width: int) -> dict[str, float]:
    """Load `page` in a `width` px iframe in headless Chromium; return what the page posted.

    An iframe, because headless Chromium will not make its window narrower than 500 px.
    """
    assert CHROMIUM is not None
    frame = page.with_name(f"frame-{width}.html")
    frame.write_text(FRAME.format(src=page.name, width=width))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={width},900",
             "--virtual-time-budget=5000", "--dump-dom", frame.as_uri()],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    body = BeautifulSoup(dom, "html.parser").body
    return json.loads(body["data-measure"])
