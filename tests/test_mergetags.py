"""Merge tags survive MJML and premailer as placeholders and are filled per subscriber."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.mergetags import (
    MergeTag,
    MergeTagError,
    MergeTemplate,
    fill,
    find_tags,
    protect,
    restore,
    sentinel,
)
from newsletter.config import load_config

VALUES = {
    "subscriber.first_name": "Zoë",
    "subscriber.last_name": "O'Neil",
    "subscriber.email": "zoe@example.com",
    "unsubscribe_url": "https://news.example.org/u/abc?x=1&y=2",
    "preferences_url": "https://news.example.org/p/abc",
    "web_url": "https://news.example.org/2026-11-24-x/",
}


def test_placeholders_survive_the_pipeline_in_html_and_text(
    write_issue: Callable[..., Path],
) -> None:
    folder = write_issue(
        front="""\
        subject: "News for {{ subscriber.first_name | default('you') }}"
        preheader: "Hello"
        date: 2026-11-24
        lead:
          title: "Title"
        """,
        body="""\
        Dear {{ subscriber.first_name | default("friend") }} ({{ subscriber.email }}),
        [leave]({{ unsubscribe_url }}) or [read online]({{ web_url }}).
        """,
    )
    built = build_issue(load_issue(folder), load_config())
    assert built.subject == 'News for {{ subscriber.first_name | default("you") }}'
    for document in (built.html, built.text):
        assert '{{ subscriber.first_name | default("friend") }}' in document
        assert "{{ subscriber.email }}" in document
        assert "xnlmt" not in document
    soup = BeautifulSoup(built.html, "html.parser")
    assert soup.find("a", string="leave")["href"] == "{{ unsubscribe_url }}"
    assert soup.find("a", string="read online")["href"] == "{{ web_url }}"
    assert "leave [1]" in built.text and "[1] {{ unsubscribe_url }}" in built.text
    assert "<title>News for {{ subscriber.first_name" in built.html

    html = MergeTemplate.for_html(built.html).fill(VALUES)
    assert "Dear Zoë (zoe@example.com)," in html
    leave = BeautifulSoup(html, "html.parser").find("a", string="leave")
    assert leave["href"] == "https://news.example.org/u/abc?x=1&y=2"
    assert 'href="https://news.example.org/u/abc?x=1&amp;y=2"' in html
    assert "{{" not in html
    text = MergeTemplate(built.text).fill(VALUES)
    assert "Dear Zoë (zoe@example.com)," in " ".join(text.split())
    assert "[1] https://news.example.org/u/abc?x=1&y=2" in text


def test_default_used_when_value_is_empty() -> None:
    doc = 'Hi {{ subscriber.first_name | default("friend") }}!'
    assert fill(doc, {"subscriber.first_name": ""}) == "Hi friend!"
    assert fill(doc, {}) == "Hi friend!"
    assert fill(doc, {"subscriber.first_name": "Ada"}) == "Hi Ada!"


def test_html_values_are_escaped_but_text_values_are_not() -> None:
    doc = "<p>{{ subscriber.last_name }}</p>"
    assert fill(doc, {"subscriber.last_name": "<b>O'Neil & co</b>"}, is_html=True) == (
        "<p>&lt;b&gt;O&#x27;Neil &amp; co&lt;/b&gt;</p>"
    )
    assert fill(doc, {"subscriber.last_name": "O'Neil & co"}) == "<p>O'Neil & co</p>"


def test_template_matches_plain_replacement() -> None:
    doc = "a {{ web_url }} b {{ subscriber.email }} c {{ web_url }} d"
    template = MergeTemplate(doc)
    assert template.fields == {"web_url", "subscriber.email"}
    expected = doc.replace("{{ web_url }}", "W").replace("{{ subscriber.email }}", "E")
    assert template.fill({"web_url": "W", "subscriber.email": "E"}) == expected


def test_sentinels_round_trip() -> None:
    text = "x {{ subscriber.email }} y {{subscriber.first_name|default('pal')}} z"
    protected = protect(text)
    assert "{{" not in protected and protected.replace(" ", "").isalnum()
    assert restore(protected) == (
        'x {{ subscriber.email }} y {{ subscriber.first_name | default("pal") }} z'
    )
    assert sentinel(MergeTag("web_url")) == protect("{{web_url}}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ subscriber.age }}", "unknown merge tag 'subscriber.age'"),
        ("{{ unsubscribe_link }}", "unknown merge tag 'unsubscribe_link'"),
        ("Hi {{ subscriber.first_name ", "unclosed merge tag"),
        ("{{ web_url | upper }}", "malformed merge tag"),
    ],
)
def test_bad_tags_are_refused(text: str, message: str) -> None:
    with pytest.raises(MergeTagError, match=message):
        find_tags(text)
