"""The built HTML parsed once (`Page`), and where each of its pieces comes from (`Locator`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import cssutils
import lxml.html
from jinja2 import Environment
from lxml.cssselect import CSSSelector, SelectorError

from newsletter.checks.content import at_line, front_matter_strings
from newsletter.compose.assets import ImageRef
from newsletter.compose.build import Prepared, image_refs
from newsletter.compose.models import Issue
from newsletter.config import CONFIG_NAME

#: Where findings about the built email as a whole point.
HTML = "email HTML"
_CSS = cssutils.CSSParser(loglevel=logging.CRITICAL, validate=False)


def _declarations(style: str | None) -> list[tuple[str, str]]:
    """`a: b; c: d` → [("a", "b"), ("c", "d")], names in lower case, `!important` dropped."""
    pairs = []
    for declaration in (style or "").split(";"):
        name, colon, value = declaration.partition(":")
        if colon and name.strip():
            value = re.sub(r"\s*!\s*important\s*$", "", value.strip(), flags=re.I)
            pairs.append((name.strip().lower(), value))
    return pairs


class Page:
    """The built HTML parsed once: styles, hidden parts, visible text and style rules."""

    def __init__(self, html: str) -> None:
        self.doc = lxml.html.document_fromstring(html)
        elements = [el for el in self.doc.iter() if isinstance(el.tag, str)]
        self.styles = {el: dict(_declarations(el.get("style"))) for el in elements}
        self.hidden = {
            inner
            for el in elements
            if self.styles[el].get("display") == "none"
            for inner in el.iter()
        }
        self.runs = list(self._text_runs())
        self.rules = list(self._style_rules())
        self.text = " ".join(" ".join(text.split()) for _, text in self.runs)

    def visible(self, tag: str | None = None) -> Iterator[lxml.html.HtmlElement]:
        """Elements of the body that are not hidden (of one tag, if given)."""
        for el in self.doc.body.iter(tag):
            if isinstance(el.tag, str) and el not in self.hidden:
                yield el

    def _text_runs(self) -> Iterator[tuple[lxml.html.HtmlElement, str]]:
        """Each visible piece of text with the element it sits in (a tail: in the parent)."""
        body = self.doc.body
        for el in body.iter():
            shown = isinstance(el.tag, str) and el.tag not in ("style", "script")
            if shown and el not in self.hidden and (el.text or "").strip():
                yield el, el.text or ""
            parent = el.getparent()
            if el is not body and parent not in self.hidden and (el.tail or "").strip():
                yield parent, el.tail or ""

    def _style_rules(self) -> Iterator[tuple[Any, str | None]]:
        """Every rule of the `<style>` blocks, with the media query it sits in (or None)."""
        for style in self.doc.iter("style"):
            outer = style.get("media")
            for rule in _CSS.parseString(style.text or ""):
                if rule.type == rule.MEDIA_RULE:
                    for inner in rule.cssRules:
                        if inner.type == inner.STYLE_RULE:
                            yield inner, rule.media.mediaText
                elif rule.type == rule.STYLE_RULE:
                    yield rule, outer

    def select(self, selectors: Iterable[str]) -> set[lxml.html.HtmlElement]:
        """The elements any of the CSS selectors match (ones lxml cannot evaluate are skipped)."""
        found: set[lxml.html.HtmlElement] = set()
        for selector in selectors:
            try:
                found.update(CSSSelector(selector)(self.doc))
            except SelectorError:
                continue
        return found


class Locator:
    """Says where a piece of the built HTML comes from.

    In order: a front-matter value (or the image it names), a line of issue.md, a line of a
    template (project templates shadow the defaults), else the email HTML as a whole.
    """

    def __init__(self, issue: Issue, prepared: Prepared, env: Environment) -> None:
        self._exact: dict[str, str] = {}
        for path, value in front_matter_strings(issue):
            self._exact.setdefault(value, f"front matter: {path}")
        for ref in image_refs(issue, prepared.tokens):
            if asset := prepared.assets.get(ref.src):
                self._exact.setdefault(asset.url, self._ref_where(issue, ref))
        if prepared.logo:
            self._exact.setdefault(prepared.logo.url, f"{CONFIG_NAME}: logo")
        lines = enumerate(issue.body.splitlines(), start=issue.body_line)
        self._sources = [(at_line(issue, number), line) for number, line in lines]
        if env.loader is not None:
            for name in env.list_templates(filter_func=lambda name: name.endswith(".mjml.j2")):
                source = env.loader.get_source(env, name)[0]
                for number, line in enumerate(source.splitlines(), start=1):
                    self._sources.append((f"template: {name}:{number}", line))

    @staticmethod
    def _ref_where(issue: Issue, ref: ImageRef) -> str:
        return f"front matter: {ref.field}" if ref.field else at_line(issue, ref.line or 0)

    def find(self, value: str, attribute: str) -> str:
        """Where this value of an HTML attribute (a link, an image address) comes from."""
        pattern = rf"\b{attribute}\s*=\s*[\"']?{re.escape(value)}(?=[\"'\s>/]|$)"
        return self._exact.get(value) or self.search(pattern)

    def search(self, pattern: str, flags: int = 0) -> str:
        """The first body or template line matching the regular expression."""
        compiled = re.compile(pattern, flags)
        return next((where for where, line in self._sources if compiled.search(line)), HTML)
