"""`newsletter check`: what would go wrong with an issue in the inbox, found before it is sent.

`check_built` is pure analysis of a built issue: the model, the Markdown tokens, the images and
the final HTML (parsed with lxml). `run_check` is the edge: it loads and builds the issue and
turns load, validation and build problems into findings too. Every finding says where it comes
from (a front-matter field, a line of issue.md, a template, newsletter.toml) and what to do.
With `spam=True`, SpamAssassin (when installed) scores one complete sample message offline.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import logging
import re
import shutil
import subprocess
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cssutils
import lxml.html
from jinja2 import Environment
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorError
from markdown_it.token import Token

from . import markdown
from .assets import ImageRef
from .build import (
    GMAIL_CLIP_BYTES,
    WARN_BYTES,
    BuiltIssue,
    Prepared,
    build_issue,
    image_refs,
    prepare,
)
from .config import CONFIG_NAME, Config, load_config
from .errors import ConfigError, InputError, Problem, TemplateError, UnreadableIssueError
from .issues import load_issue
from .mergetags import FIELDS, TAG, MergeTag, fill, restore
from .message import MessageFactory, Recipient
from .models import FrontMatter, Issue
from .templates import make_environment
from .tokens import Signer

#: Inboxes cut subjects around here (RFC 5322's recommended line length, too).
SUBJECT_MAX_CHARS = 78
#: Inboxes show about this much of the preheader.
PREHEADER_MAX_CHARS = 140
IMAGE_MAX_BYTES = 1024 * 1024
IMAGES_TOTAL_MAX_BYTES = 5 * 1024 * 1024
#: Fewer visible characters per image than this reads as an image-only email to spam filters.
MIN_TEXT_PER_IMAGE = 100
#: Text darker than this relative luminance has less than 4.5:1 contrast on a black background.
DARK_TEXT_LUMINANCE = 0.175
#: Where findings about the built email as a whole point.
HTML = "email HTML"
FOOTER_TEMPLATE = "footer.mjml.j2"
#: What a newsletter.toml without a postal address is checked with (and reported).
POSTAL_PLACEHOLDER = "(postal address missing)"
#: Seconds SpamAssassin may take to score the sample message.
SPAM_TIMEOUT = 300
SPAM_NOT_INSTALLED = "SpamAssassin is not installed; install it with: apt-get install spamassassin"

_PLACEHOLDER = re.compile(r"\bTK\b|\bTODO\b|(?i:lorem\s+ipsum)")
_BANGS = re.compile(r"!{2,}")
_WORD = re.compile(r"[^\W\d_]{4,}")
#: `hero.png`, `IMG_2041`, `DSC01234`: alt texts that are file or camera names.
_FILE_NAME = re.compile(
    r"\S+\.(?:png|jpe?g|gif|webp|svg|bmp|tiff?|heic)"
    r"|(?:img|dsc[nf]?|image|photo|screenshot)[\s_-]*\d+",
    re.I,
)
_VAGUE = {
    "click", "click here", "here", "read more", "more", "learn more", "find out more",
    "see more", "more info", "details", "this", "link", "this link", "continue",
}  # fmt: skip
_A_TAG = re.compile(r"<a\b([^>]*)>", re.I)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_URL_TAGS = {MergeTag(name).text for name in FIELDS if name.endswith("_url")}
_MJML_CLASS = re.compile(r"mj-[\w-]+|moz-text-html")
_NAMED_COLOURS = {"black": (0, 0, 0), "navy": (0, 0, 128), "maroon": (128, 0, 0)}
_CSS = cssutils.CSSParser(loglevel=logging.CRITICAL, validate=False)


class Level(StrEnum):
    """How bad a finding is: errors fail `check`, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing to fix or consider, where it comes from and what to do about it."""

    level: Level
    code: str
    message: str
    where: str
    fix: str


@dataclass(frozen=True)
class SpamRule:
    """A SpamAssassin rule that fired, with its points."""

    name: str
    points: float
    description: str


@dataclass
class SpamReport:
    """SpamAssassin's verdict on a sample copy, or why there is none."""

    available: bool
    score: float | None = None
    threshold: float | None = None
    rules: list[SpamRule] = field(default_factory=list)
    note: str | None = None


@dataclass
class CheckReport:
    """Every finding about an issue, and the sizes of what was built (None if it did not)."""

    findings: list[Finding]
    html_bytes: int | None = None
    text_bytes: int | None = None
    image_bytes: int = 0
    spam: SpamReport | None = None

    @property
    def counts(self) -> dict[str, int]:
        """How many errors and warnings there are."""
        levels = Counter(finding.level for finding in self.findings)
        return {"errors": levels[Level.ERROR], "warnings": levels[Level.WARNING]}

    def to_json(self) -> dict[str, Any]:
        """The report as plain data for `--json`."""
        return {
            "ok": self.counts["errors"] == 0,
            "counts": self.counts,
            "sizes": {
                "html_bytes": self.html_bytes,
                "text_bytes": self.text_bytes,
                "image_bytes": self.image_bytes,
            },
            "findings": [asdict(finding) for finding in self.findings],
            "spam": asdict(self.spam) if self.spam else None,
        }


def plural(count: int, word: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _error(code: str, message: str, where: str, fix: str) -> Finding:
    return Finding(Level.ERROR, code, message, where, fix)


def _warning(code: str, message: str, where: str, fix: str) -> Finding:
    return Finding(Level.WARNING, code, message, where, fix)


# --- problems from loading and building -----------------------------------------------------

_FIXES = {
    "missing-alt": 'add alt: describe the image, or write alt: "" for a purely decorative one',
    "missing-subject": "add a subject: the line the inbox shows",
    "missing-preheader": "add a preheader: the preview text inboxes show after the subject",
    "missing-postal-address": (
        "add postal_address to newsletter.toml: anti-spam laws require it in every footer"
    ),
    "bad-merge-tag": "use one of the known merge tags and close it with '}}'",
    "template-error": "fix the template or the issue's 'template' field",
}


def _problem_code(problem: Problem) -> str:
    """A finding code for a located problem from the loader, the validator or the build."""
    name, text = problem.field or "", problem.message
    missing = text.startswith("required field is missing") or text == "must not be empty"
    if text.startswith("unknown field"):
        return "unknown-field"
    if "merge tag" in text:
        return "bad-merge-tag"
    if "image" in text:
        return "missing-image" if "not found" in text else "bad-image"
    if missing and name.endswith(".alt"):
        return "missing-alt"
    if missing and name in ("subject", "preheader", "postal_address"):
        return "missing-" + name.replace("_", "-")
    if "URL" in text:
        return "bad-link"
    return "invalid-field"


def _problem_where(problem: Problem, error: InputError) -> str:
    path, line, name = problem.path, problem.line, problem.field
    if isinstance(error, TemplateError):
        return f"template: {path.name}:{line}" if path and line else "template"
    if path is not None and (isinstance(error, ConfigError) or path.name == CONFIG_NAME):
        return f"{path.name}: {name}" if name else path.name
    if name:
        return f"front matter: {name}"
    if path is not None:
        return f"{path.name}:{line}" if line else path.name
    return "issue"


def problem_findings(error: InputError) -> list[Finding]:
    """One error finding per problem of a load, validation or build error."""
    findings = []
    for problem in error.problems:
        code = _problem_code(problem)
        if isinstance(error, TemplateError):
            code = "template-error"
        message, _, hint = problem.message.partition("; ")
        where = _problem_where(problem, error)
        fix = _FIXES.get(code) or hint or "fix it and run check again"
        findings.append(_error(code, message, where, fix))
    return findings


# --- the issue's own texts ------------------------------------------------------------------


def _front_matter_strings(issue: Issue) -> Iterator[tuple[str, str]]:
    """Every text of the front matter with its field path, such as `teasers.0.title`."""

    def walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{path}.{index}")

    fields = set(FrontMatter.model_fields) - {"template"}
    yield from walk(issue.model_dump(include=fields), "")


def _at_line(issue: Issue, line: int) -> str:
    return f"{issue.source.name}:{line}"


def _texts(issue: Issue) -> Iterator[tuple[str, str]]:
    """Every text of the issue with where it is: front-matter fields, then body lines."""
    for path, value in _front_matter_strings(issue):
        yield f"front matter: {path}", value
    for number, line in enumerate(issue.body.splitlines(), start=issue.body_line):
        yield _at_line(issue, number), line


def _text_findings(issue: Issue) -> Iterator[Finding]:
    for where, text in _texts(issue):
        if match := _PLACEHOLDER.search(text):
            yield _error(
                "placeholder-text",
                f"leftover placeholder '{match[0]}'",
                where,
                "write the final text in its place",
            )
        if match := _BANGS.search(text):
            yield _warning(
                "spam-exclamation",
                f"'{match[0]}': runs of exclamation marks are a classic spam-filter signal",
                where,
                "keep to one exclamation mark",
            )


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _subject_findings(issue: Issue) -> Iterator[Finding]:
    subject = fill(issue.subject, {})  # merge tags at their default
    where = "front matter: subject"
    if len(subject) > SUBJECT_MAX_CHARS:
        yield _warning(
            "long-subject",
            f"the subject has {len(subject)} characters; inboxes cut it after about "
            f"{SUBJECT_MAX_CHARS}",
            where,
            "shorten it and put what matters first",
        )
    letters = [c for c in TAG.sub("", issue.subject) if c.isalpha()]
    capitals = [word for word in _WORD.findall(TAG.sub("", issue.subject)) if word.isupper()]
    if len(letters) >= 4 and all(c.isupper() for c in letters):
        yield _warning(
            "subject-all-caps",
            "the subject is in all capitals: it reads as shouting and spam filters score it",
            where,
            "write it in sentence case",
        )
    elif len(capitals) >= 2:
        yield _warning(
            "spam-caps",
            f"words in capitals in the subject ({', '.join(capitals)}) trip spam filters",
            where,
            "write them in lower case; keep capitals for acronyms",
        )
    if len(issue.preheader) > PREHEADER_MAX_CHARS:
        yield _warning(
            "long-preheader",
            f"the preheader has {len(issue.preheader)} characters; inboxes show about "
            f"{PREHEADER_MAX_CHARS}",
            "front matter: preheader",
            "shorten it",
        )
    if _normal(subject) and _normal(issue.preheader).startswith(_normal(subject)):
        yield _warning(
            "preheader-repeats-subject",
            "the preheader repeats the subject, wasting the preview line",
            "front matter: preheader",
            "say something the subject does not: what is inside, why open it",
        )


# --- images ---------------------------------------------------------------------------------


def _alt_findings(issue: Issue, images: Iterable[tuple[Token, str]]) -> Iterator[Finding]:
    """Markdown images without alt text, and alt texts that look like file names."""
    alts = [
        (f"front matter: {path}", value)
        for path, value in _front_matter_strings(issue)
        if path.endswith(".alt")
    ]
    for image, where in images:
        alt = "".join(child.content for child in image.children or []).strip()
        title = image.attrGet("title")
        if not alt and not markdown.is_decorative(str(title) if title else None):
            src = image.attrGet("src")
            yield _error(
                "missing-alt",
                f"the image '{src}' has no alt text",
                where,
                f"describe it: ![What it shows]({src}); for a purely decorative image say so "
                f'with the title: ![]({src} "{markdown.DECORATIVE}")',
            )
        alts.append((where, alt))
    for where, alt in alts:
        if _FILE_NAME.fullmatch(alt.strip()):
            yield _warning(
                "alt-filename",
                f"the alt text '{alt}' looks like a file name",
                where,
                "describe what the image shows",
            )


def image_bytes(built: BuiltIssue) -> int:
    """The weight of the email's local images (those a reader downloads from `base_url`)."""
    return sum(asset.size_bytes or 0 for asset in built.assets)


def _weight_findings(built: BuiltIssue, locate: _Locator) -> Iterator[Finding]:
    for asset in built.assets:
        size = asset.size_bytes or 0
        if size > IMAGE_MAX_BYTES:
            yield _warning(
                "large-image",
                f"the image '{asset.src}' weighs {size / 1024 / 1024:.1f} MB; it loads slowly "
                "on phones",
                locate.find(asset.url, "src"),
                "resize it to at most twice its display width and compress it (under 1 MB)",
            )
    total = image_bytes(built)
    if total > IMAGES_TOTAL_MAX_BYTES:
        yield _warning(
            "heavy-images",
            f"the images weigh {total / 1024 / 1024:.1f} MB together (over 5 MB)",
            "images",
            "use fewer or smaller images",
        )


def _html_image_findings(page: _Page, prepared: Prepared, locate: _Locator) -> Iterator[Finding]:
    """Images of the final HTML without alt, or without a known width."""
    unknown = {asset.url for asset in prepared.assets.values() if asset.width is None}
    sizeless: set[str] = set()
    for img in page.visible("img"):
        src = img.get("src", "")
        if img.get("alt") is None:
            yield _error(
                "missing-alt",
                f"the image '{src}' has no alt attribute",
                locate.find(src, "src"),
                'add alt="…" describing it, or alt="" for a purely decorative image',
            )
        if (img.get("width") is None or src in unknown) and src not in sizeless:
            sizeless.add(src)
            yield _warning(
                "image-no-width",
                f"the image '{src}' has no width and height the email can give, so Outlook "
                "may show it at its full size",
                locate.find(src, "src"),
                "put the file in the issue folder (its size is then read) or give the <img> "
                "a width",
            )


# --- links ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    """A link: its target (None: no href at all), its text (None: unknown) and where it is."""

    href: str | None
    text: str | None
    where: str
    named: bool = False


def _raw_links(fragment: str, where: str) -> Iterator[_Link]:
    """Links written as raw HTML in the Markdown (their text is not known here)."""
    for tag in _A_TAG.finditer(fragment):
        if href := _HREF.search(tag[1]):
            yield _Link(restore(next(g for g in href.groups() if g is not None)), None, where)


def _markdown_items(
    issue: Issue, tokens: Sequence[Token]
) -> tuple[list[_Link], list[tuple[Token, str]]]:
    """The body's links and images, each with the line of issue.md it is on."""
    links: list[_Link] = []
    images: list[tuple[Token, str]] = []
    for token in tokens:
        if not token.map:
            continue
        line = issue.body_line + token.map[0]
        if token.type == "html_block":
            links += _raw_links(token.content, _at_line(issue, line))
        children = token.children or []
        for index, child in enumerate(children):
            where = _at_line(issue, line)
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "image":
                images.append((child, where))
            elif child.type == "html_inline":
                links += _raw_links(child.content, where)
            elif child.type == "link_open":
                inside = itertools.takewhile(
                    lambda c: c.type != "link_close", children[index + 1 :]
                )
                text = "".join(" " if c.type == "softbreak" else c.content for c in inside)
                links.append(_Link(restore(str(child.attrGet("href") or "")), restore(text), where))
    return links, images


def _link_problem(href: str | None) -> str | None:
    """Why a link target is no good in an email, or None when it is fine."""
    value = (href or "").strip()
    if not value:
        return "the link has no target"
    if value.startswith("#"):
        return f"the link points to '{value}', which goes nowhere in an email"
    if value in _URL_TAGS:
        return None
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "javascript":
        return "the link is a javascript: link, which email clients block"
    if (scheme in ("http", "https") and parts.netloc) or (scheme == "mailto" and parts.path):
        return None
    return f"'{value}' is not a URL"


def _vague(text: str) -> bool:
    return _normal(text) in _VAGUE or not _normal(text)


def _link_findings(links: Iterable[_Link]) -> Iterator[Finding]:
    for link in links:
        if problem := _link_problem(link.href):
            yield _error(
                "bad-link",
                problem,
                link.where,
                "link to a full address such as https://example.org/page (or mailto:…)",
            )
        elif str(link.href).strip().lower().startswith("http://"):
            yield _warning(
                "insecure-link",
                f"'{link.href}' is an http:// link; some clients flag it as unsafe",
                link.where,
                "use https:// if the site has it",
            )
        if link.text is not None and not link.named and _vague(link.text):
            said = f"'{link.text.strip()}'" if link.text.strip() else "nothing"
            yield _warning(
                "vague-link-text",
                f"the link text says {said} on its own; screen-reader users hear links out "
                "of context",
                link.where,
                "say where it goes, e.g. 'read the full report on rents'",
            )


def _anchor(element: lxml.html.HtmlElement) -> tuple[str | None, str]:
    """A link's target and text, merge tags restored, to match body links with final ones."""
    href = element.get("href")
    text = " ".join(restore(element.text_content()).split())
    return (restore(href) if href is not None else None, text)


def _template_links(page: _Page, prepared: Prepared, locate: _Locator) -> Iterator[_Link]:
    """Links of the final HTML that do not come from the Markdown body (checked on its own)."""
    prose = Counter(
        _anchor(a)
        for block in markdown.render_blocks(prepared.tokens, prepared.assets)
        if isinstance(block, markdown.Prose)
        for a in lxml.html.fragment_fromstring(block.html, create_parent="div").iter("a")
    )
    for a in page.visible("a"):
        key = _anchor(a)
        if prose[key]:
            prose[key] -= 1
            continue
        href, text = key
        text = " ".join([text, *(img.get("alt", "") for img in a.iter("img"))]).strip()
        named = bool(a.get("aria-label") or a.get("aria-labelledby"))
        yield _Link(href, text, locate.find(href, "href") if href else HTML, named)


# --- the final HTML -------------------------------------------------------------------------


def _declarations(style: str | None) -> list[tuple[str, str]]:
    """`a: b; c: d` → [("a", "b"), ("c", "d")], names in lower case, `!important` dropped."""
    pairs = []
    for declaration in (style or "").split(";"):
        name, colon, value = declaration.partition(":")
        if colon and name.strip():
            value = re.sub(r"\s*!\s*important\s*$", "", value.strip(), flags=re.I)
            pairs.append((name.strip().lower(), value))
    return pairs


class _Page:
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


def _size_findings(html_bytes: int) -> Iterator[Finding]:
    kb = f"{html_bytes / 1024:.1f} KB"
    if html_bytes > GMAIL_CLIP_BYTES:
        yield _error(
            "gmail-clip",
            f"the HTML is {kb}: Gmail clips messages over 102 KB, hiding the rest and the "
            "unsubscribe link",
            HTML,
            "shorten the issue (fewer teasers, a shorter story)",
        )
    elif html_bytes > WARN_BYTES:
        yield _warning(
            "near-gmail-clip",
            f"the HTML is {kb}, close to Gmail's 102 KB clipping limit",
            HTML,
            "keep the issue short enough to leave room for personalised links",
        )


def _footer_findings(config: Config, page: _Page) -> Iterator[Finding]:
    where = f"template: {FOOTER_TEMPLATE}"
    unsubscribe = MergeTag("unsubscribe_url").text
    if not any((a.get("href") or "").strip() == unsubscribe for a in page.visible("a")):
        yield _error(
            "missing-unsubscribe",
            "the email has no unsubscribe link",
            where,
            f"link to {unsubscribe} in the footer: <a href=\"{{{{ merge('unsubscribe_url') "
            '}}">Unsubscribe</a>',
        )
    first_line = " ".join(config.postal_address.splitlines()[0].split())
    if first_line not in page.text:
        yield _error(
            "missing-postal-address",
            "the email does not show the postal address (required by anti-spam laws)",
            where,
            "print {{ config.postal_address }} in the footer",
        )


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
    source = importlib.resources.files(__package__).joinpath("data", "css_support.toml")
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


def _css_findings(page: _Page, locate: _Locator) -> Iterator[Finding]:
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
        yield _warning(
            "css-unsupported",
            f"{fact.label} ({plural(len(declarations), 'place')}) is dropped by "
            f"{', '.join(fact.clients)}: {fact.effect}",
            locate.search(rf"{re.escape(name)}\s*[:=]\s*[\"']?{re.escape(value.strip())}"),
            "fine if that look is acceptable there; otherwise change the template",
        )
    if stray:
        yield _warning(
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


def _dark_mode_findings(page: _Page, locate: _Locator) -> Iterator[Finding]:
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
        yield _warning(
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


def _ratio_findings(page: _Page) -> Iterator[Finding]:
    images = sum(1 for _ in page.visible("img"))
    if images and len(page.text) / images < MIN_TEXT_PER_IMAGE:
        yield _warning(
            "low-text-ratio",
            f"{len(page.text)} characters of text for {images} images: spam filters distrust "
            "emails that are mostly images",
            HTML,
            f"write at least {MIN_TEXT_PER_IMAGE} characters of text per image",
        )


class _Locator:
    """Says where a piece of the built HTML comes from.

    In order: a front-matter value (or the image it names), a line of issue.md, a line of a
    template (project templates shadow the defaults), else the email HTML as a whole.
    """

    def __init__(self, issue: Issue, prepared: Prepared, env: Environment) -> None:
        self._exact: dict[str, str] = {}
        for path, value in _front_matter_strings(issue):
            self._exact.setdefault(value, f"front matter: {path}")
        for ref in image_refs(issue, prepared.tokens):
            if asset := prepared.assets.get(ref.src):
                self._exact.setdefault(asset.url, self._ref_where(issue, ref))
        if prepared.logo:
            self._exact.setdefault(prepared.logo.url, f"{CONFIG_NAME}: logo")
        lines = enumerate(issue.body.splitlines(), start=issue.body_line)
        self._sources = [(_at_line(issue, number), line) for number, line in lines]
        if env.loader is not None:
            for name in env.list_templates(filter_func=lambda name: name.endswith(".mjml.j2")):
                source = env.loader.get_source(env, name)[0]
                for number, line in enumerate(source.splitlines(), start=1):
                    self._sources.append((f"template: {name}:{number}", line))

    @staticmethod
    def _ref_where(issue: Issue, ref: ImageRef) -> str:
        return f"front matter: {ref.field}" if ref.field else _at_line(issue, ref.line or 0)

    def find(self, value: str, attribute: str) -> str:
        """Where this value of an HTML attribute (a link, an image address) comes from."""
        pattern = rf"\b{attribute}\s*=\s*[\"']?{re.escape(value)}(?=[\"'\s>/]|$)"
        return self._exact.get(value) or self.search(pattern)

    def search(self, pattern: str, flags: int = 0) -> str:
        """The first body or template line matching the regular expression."""
        compiled = re.compile(pattern, flags)
        return next((where for where, line in self._sources if compiled.search(line)), HTML)


def check_built(
    issue: Issue,
    config: Config,
    prepared: Prepared,
    built: BuiltIssue,
    env: Environment | None = None,
) -> list[Finding]:
    """Every finding about a built issue (reads only the templates, to say where things are)."""
    page = _Page(built.html)
    locate = _Locator(issue, prepared, env or make_environment(config.root))
    links, images = _markdown_items(issue, prepared.tokens)
    return [
        *_size_findings(built.html_bytes),
        *_subject_findings(issue),
        *_text_findings(issue),
        *_alt_findings(issue, images),
        *_html_image_findings(page, prepared, locate),
        *_weight_findings(built, locate),
        *_link_findings([*links, *_template_links(page, prepared, locate)]),
        *_footer_findings(config, page),
        *_css_findings(page, locate),
        *_dark_mode_findings(page, locate),
        *_ratio_findings(page),
    ]


# --- SpamAssassin ---------------------------------------------------------------------------


def sample_message(built: BuiltIssue, config: Config) -> bytes:
    """One complete personalised copy for a sample reader, exactly as it would be sent."""
    factory = MessageFactory(built, config, Signer(b"check"))
    return factory.render(Recipient("reader@example.com", "Sample", "Reader")).data


_SA_TOTALS = re.compile(r"Content analysis details:\s*\((-?[\d.]+) points, (-?[\d.]+) required\)")
_SA_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def parse_spam_report(output: str) -> SpamReport:
    """Score, threshold and rules from the report `spamassassin -t` adds to a message."""
    output = output.replace("\r\n", "\n")
    totals = _SA_TOTALS.search(output)
    if totals is None:
        return SpamReport(True, note="SpamAssassin gave no report")
    rules: list[SpamRule] = []
    table = output[totals.end() :].split("\n\n", 2)[1:2]
    for line in "".join(table).splitlines():
        if match := _SA_RULE.match(line):
            rules.append(SpamRule(match[2], float(match[1]), match[3].strip()))
        elif rules and line.startswith(" " * 20):
            last = rules[-1]
            rules[-1] = SpamRule(last.name, last.points, f"{last.description} {line.strip()}")
    return SpamReport(True, float(totals[1]), float(totals[2]), rules)


def check_spam(built: BuiltIssue | None, config: Config) -> SpamReport:
    """Score a sample copy with SpamAssassin's local tests (no network), if it is installed."""
    program = shutil.which("spamassassin")
    if program is None:
        return SpamReport(False, note=SPAM_NOT_INSTALLED)
    if built is None:
        return SpamReport(True, note="not scored: fix the errors first so that the issue builds")
    try:
        result = subprocess.run(
            [program, "-L", "-t"],
            input=sample_message(built, config),
            capture_output=True,
            timeout=SPAM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SpamReport(True, note=f"SpamAssassin could not score the message: {exc}")
    return parse_spam_report(result.stdout.decode("utf-8", errors="replace"))


def spam_findings(report: SpamReport) -> list[Finding]:
    """A warning when SpamAssassin's score reaches its spam threshold."""
    if report.score is None or report.threshold is None or report.score < report.threshold:
        return []
    top = sorted(report.rules, key=lambda rule: -rule.points)[:3]
    return [
        _warning(
            "spam-score",
            f"SpamAssassin scores the message {report.score} (spam from {report.threshold}); "
            f"biggest rules: {', '.join(f'{r.name} {r.points}' for r in top)}",
            "sample message",
            "fix what those rules point at, then run check --spam again",
        )
    ]


# --- the edge -------------------------------------------------------------------------------


def load_config_for_check(
    path: Path | None, start: Path = Path(".")
) -> tuple[Config, list[Finding]]:
    """The config; if only its postal address is missing, a stand-in and an error finding."""
    try:
        return load_config(path, start), []
    except ConfigError as exc:
        source = exc.problems[0].path
        if source is None or any(p.field != "postal_address" for p in exc.problems):
            raise
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        data |= {"postal_address": POSTAL_PLACEHOLDER, "root": source.parent}
        return Config(**data), problem_findings(exc)


def run_check(
    issue_dir: Path,
    config: Config,
    *,
    spam: bool = False,
    config_findings: Sequence[Finding] = (),
) -> CheckReport:
    """Load, build and check an issue; UnreadableIssueError if issue.md cannot be read at all."""
    report = CheckReport(list(config_findings))
    built = None
    try:
        issue = load_issue(issue_dir)
        env = make_environment(config.root)
        prepared = prepare(issue, config)
        built = build_issue(issue, config, env, prepared)
    except UnreadableIssueError:
        raise
    except InputError as exc:
        report.findings += problem_findings(exc)
    else:
        report.findings += check_built(issue, config, prepared, built, env)
        report.html_bytes = built.html_bytes
        report.text_bytes = len(built.text.encode("utf-8"))
        report.image_bytes = image_bytes(built)
    if spam:
        report.spam = check_spam(built, config)
        report.findings += spam_findings(report.spam)
    report.findings.sort(key=lambda finding: finding.level is not Level.ERROR)
    return report
