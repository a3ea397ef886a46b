"""Checks on the final HTML's CSS: what some email clients drop, and dark-mode colours.

The facts about client support live in newsletter/data/css_support.toml.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html
from lxml import etree

from newsletter.checks.findings import Finding, plural, warning_finding
from newsletter.checks.page import Locator, Page

#: Text darker than this relative luminance has less than 4.5:1 contrast on a black background.
DARK_TEXT_LUMINANCE = 0.175
_MJML_CLASS = re.compile(r"mj-[\w-]+|moz-text-html")
_NAMED_COLOURS = {"black": (0, 0, 0), "navy": (0, 0, 128), "maroon": (128, 0, 0)}


@dataclass(frozen=True)
class CssFact:
    """CSS that some email clients drop, from newsletter/data/css_support.toml."""

    label: str
    properties: tuple[str, ...]
    clients: tuple[str, ...]
    effect: str
    value: re.Pattern[str] | None = None
    mso_fallback: bool = False
    fallback_attribute: str | None = None

    def matches(self, name: str, value: str) -> bool:
        """True if the declaration `name: value` is what this fact is about."""
        return name in self.properties and (self.value is None or bool(self.value.search(value)))

    def has_fallback(self, element: lxml.html.HtmlElement) -> bool:
        """True if the clients read something else on this element (see the data file)."""
        twin = element.getprevious()
        is_twin = twin is not None and twin.tag is etree.Comment
        if self.mso_fallback and is_twin and (twin.text or "").lstrip().startswith("[if mso"):
            return True
        return bool(self.fallback_attribute and element.get(self.fallback_attribute))


@dataclass(frozen=True)
class CssSupport:
    """The facts about CSS properties, and the one about `<style>` blocks."""

    facts: tuple[CssFact, ...]
    style_block_clients: tuple[str, ...]
    style_block_effect: str


@functools.cache
def css_support() -> CssSupport:
    """The CSS facts the project keeps in newsletter/data/css_support.toml."""
    source = importlib.resources.files("newsletter").joinpath("data", "css_support.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    facts = tuple(
        CssFact(
            label=fact["label"],
            properties=tuple(fact["properties"]),
            clients=tuple(fact["clients"]),
            effect=fact["effect"],
            value=re.compile(fact["value"], re.I) if "value" in fact else None,
            mso_fallback=fact.get("mso_fallback", False),
            fallback_attribute=fact.get("fallback_attribute"),
        )
        for fact in data["fact"]
    )
    block = data["style_block"]
    return CssSupport(facts, tuple(block["clients"]), block["effect"])


def _mjml_only(selectors: str) -> bool:
    """True if every selector of the list names classes, and only MJML's own."""
    for selector in selectors.split(","):
        names = re.findall(r"\.([\w-]+)", selector)
        if not names or not all(_MJML_CLASS.fullmatch(name) for name in names):
            return False
    return True


def _outlook_dark_mode(selectors: str) -> bool:
    """True if every selector is one of Outlook.com's dark-mode hooks ([data-ogsc], [data-ogsb]):
    rules written for that client alone, which no other client needs."""
    return all(s.strip().startswith(("[data-ogsc]", "[data-ogsb]")) for s in selectors.split(","))


def css_findings(page: Page, locate: Locator) -> Iterator[Finding]:
    """CSS some clients drop with no fallback: properties the facts name, rules outside @media."""
    support = css_support()
    found: dict[CssFact, list[tuple[str, str]]] = defaultdict(list)
    for el in page.visible():
        for name, value in page.styles[el].items():
            for fact in support.facts:
                if fact.matches(name, value) and not fact.has_fallback(el):
                    found[fact].append((name, value))
    stray: list[str] = []
    for rule, media in page.rules:
        if _mjml_only(rule.selectorText) or _outlook_dark_mode(rule.selectorText):
            continue
        if media is None:
            stray.append(rule.selectorText)
        for prop in rule.style:
            for fact in support.facts:
                if fact.matches(prop.name.lower(), prop.value):
                    found[fact].append((prop.name.lower(), prop.value))
    for fact, declarations in found.items():
        name, value = declarations[0]
        yield warning_finding(
            "css-unsupported",
            f"{fact.label} ({plural(len(declarations), 'place')}) is dropped by "
            f"{', '.join(fact.clients)}: {fact.effect}",
            locate.search(rf"{re.escape(name)}\s*[:=]\s*[\"']?{re.escape(value.strip())}"),
            "fine if that look is acceptable there; otherwise change the template",
        )
    if stray:
        yield warning_finding(
            "css-unsupported",
            f"{plural(len(stray), 'rule')} left in <style> outside @media (first: {stray[0]}) "
            f"are lost in {', '.join(support.style_block_clients)}: {support.style_block_effect}",
            locate.search(re.escape(stray[0])),
            "use selectors the inliner can apply (no :hover or attribute selectors), or accept "
            "that these styles are lost there",
        )


def _luminance(colour: str) -> float | None:
    """WCAG relative luminance of a CSS colour (#rgb, #rrggbb, rgb(), a few names)."""
    value = colour.strip().lower()
    if match := re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value):
        digits = match[1] if len(match[1]) == 6 else "".join(c * 2 for c in match[1])
        rgb = tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
    elif match := re.fullmatch(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,[^)]*)?\)", value):
        rgb = tuple(int(part) for part in match.groups())
    elif value in _NAMED_COLOURS:
        rgb = _NAMED_COLOURS[value]
    else:
        return None
    srgb = [c / 255 for c in rgb]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in srgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def dark_mode_findings(page: Page, locate: Locator) -> Iterator[Finding]:
    """Dark text colours set inline on a background that dark mode makes dark, not overridden."""
    text_rules, background_rules = [], []
    for rule, media in page.rules:
        if "prefers-color-scheme: dark" in (media or "") or rule.selectorText.startswith(
            "[data-ogsc]"
        ):
            names = {prop.name.lower() for prop in rule.style}
            selectors = [s.selectorText for s in rule.selectorList]
            text_rules += selectors if "color" in names else []
            background_rules += selectors if names & {"background", "background-color"} else []
    recoloured, redrawn = page.select(text_rules), page.select(background_rules)
    unreadable: dict[str, list[str]] = defaultdict(list)
    for el, text in page.runs:
        chain = [el, *el.iterancestors()]
        painter = next((a for a in chain if a in recoloured or "color" in page.styles[a]), None)
        if painter is None or painter in recoloured:
            continue
        colour = page.styles[painter]["color"]
        luminance = _luminance(colour)
        if luminance is None or luminance >= DARK_TEXT_LUMINANCE:
            continue
        ground = next((a for a in chain if _has_background(a, page.styles[a])), None)
        if ground is None or ground in redrawn:
            unreadable[colour.lower()].append(" ".join(text.split()))
    for colour, texts in unreadable.items():
        yield warning_finding(
            "dark-mode-color",
            f'text in {colour} ("{texts[0][:40]}", {len(texts)} in all) has no dark-mode '
            "colour: on a dark background it becomes unreadable",
            locate.search(re.escape(colour), re.I),
            "give the element a class the @media (prefers-color-scheme: dark) rules recolour "
            "(nl-text, nl-muted) or add a dark-mode rule for it",
        )


def _has_background(element: lxml.html.HtmlElement, style: dict[str, str]) -> bool:
    value = style.get("background-color") or style.get("background") or element.get("bgcolor")
    return bool(value) and value.strip().lower() not in ("none", "transparent")
