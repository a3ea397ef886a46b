"""The plain-text twin is written from the model: readable, complete, links as references."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config


def text_of(folder: Path) -> str:
    return build_issue(load_issue(folder), load_config()).text


def test_example_text_twin(example: Path) -> None:
    text = text_of(example)
    assert text.startswith(
        "The Bright Side | 24 November 2026\nView in your browser: {{ web_url }}"
    )
    assert "Paris shelters the first gay refugee from Chechnya" in text
    assert "By Maren Okafor" in text
    assert 'Hi {{ subscriber.first_name | default("friend") }},' in text
    assert "  1. Chechnya is a largely self-governing republic" in text
    assert "  * Back the Russian LGBT Network." in text
    assert "MORE STORIES" in text
    assert "HEROES: The heating engineer who billed a 91-year-old nothing at all" in text
    assert "Keep reading: https://example.org/stories/lush-global-climate-strike" in text
    assert "18 Harbour Lane" in text
    assert "Unsubscribe: {{ unsubscribe_url }}" in text
    assert "<" not in text.replace("<!--", "")  # no HTML
    for line in text.splitlines():
        assert len(line) <= 72 or "://" in line or "{{" in line, line


def test_links_become_numbered_references(example: Path) -> None:
    text = text_of(example)
    assert "five-minute explainer on Chechnya [1]" in text
    links = text.split("\nLINKS\n", 1)[1]
    assert "[1] https://example.org/explainers/chechnya-in-five-minutes" in links
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", text.split("\nLINKS\n")[0])}
    listed = {int(n) for n in re.findall(r"^\[(\d+)\] https?://", links, re.M)}
    assert cited == listed


def test_markdown_structures(write_issue: Callable[..., Path]) -> None:
    folder = write_issue(
        body="""\
        ## A heading

        Some *emphasis* and a [link](https://example.org/a) and the
        [same link](https://example.org/a) again.

        > Quoted words.

        1. First
        2. Second

        - Bullet
        """
    )
    text = text_of(folder)
    assert "A heading\n=========" in text
    assert "Some emphasis and a link [1] and the same link [1] again." in text
    assert "> Quoted words." in text
    assert "  1. First\n  2. Second" in text
    assert "  * Bullet" in text
    assert "[1] https://example.org/a" in text


def test_decorative_images_are_left_out_of_the_text(write_issue: Callable[..., Path]) -> None:
    folder = write_issue(body='Before.\n\n![](images/rule.png "decorative")\n\nAfter.\n')
    from PIL import Image

    Image.new("RGB", (600, 4)).save(folder / "images" / "rule.png")
    text = text_of(folder)
    assert "Before.\n\nAfter." in text and "[Image" not in text
