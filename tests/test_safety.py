"""Raw HTML in the Markdown is sanitized; everything else the editor writes is escaped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bs4 import BeautifulSoup

from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.markdown import sanitize
from newsletter.config import load_config

HOSTILE = """\
Intro paragraph.

<script>alert("x")</script>

<p onclick="steal()" style="x">Click <a href="javascript:alert(1)">me</a>
<a href="https://example.org/ok" onmouseover="x()">fine</a></p>

<form action="https://evil.example/"><input name="card"><button>Pay</button></form>

<iframe src="https://evil.example/"></iframe>
<img src="https://example.org/a.png" onerror="x()" alt="pic">
"""


def test_raw_html_is_sanitized(write_issue: Callable[..., Path]) -> None:
    folder = write_issue(body=HOSTILE)
    html = build_issue(load_issue(folder), load_config()).html
    lowered = html.lower()
    for bad in ("<script", "alert(", "onclick", "onmouseover", "onerror", "javascript:",
                "<form", "<input", "<button", "<iframe", "evil.example"):  # fmt: skip
        assert bad not in lowered, bad
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("a", string="fine")["href"] == "https://example.org/ok"
    assert soup.find("img", alt="pic")


def test_front_matter_text_is_escaped(write_issue: Callable[..., Path]) -> None:
    folder = write_issue(
        front="""\
        subject: "Fish & <b>chips</b>"
        preheader: "<script>x</script>"
        date: 2026-11-24
        lead:
          title: "<img src=x onerror=alert(1)>"
        """
    )
    html = build_issue(load_issue(folder), load_config()).html
    assert "<title>Fish &amp; &lt;b&gt;chips&lt;/b&gt;</title>" in html
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_sanitize_keeps_ordinary_markup() -> None:
    fragment = '<p>A <strong>b</strong> <em>c</em> <a href="mailto:x@example.org">d</a></p>'
    assert sanitize(fragment) == fragment
