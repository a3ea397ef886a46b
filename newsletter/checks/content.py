"""Checks on the issue's own content: subject, preheader, placeholders, alt texts and links.

They read the issue (front matter and issue.md) and its Markdown tokens, not the built HTML.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markdown_it.token import Token

from newsletter.checks.findings import Finding, error_finding, warning_finding
from newsletter.compose import markdown
from newsletter.compose.mergetags import FIELDS, TAG, MergeTag, fill, restore
from newsletter.compose.models import FrontMatter, Issue

#: Inboxes cut subjects around here (RFC 5322's recommended line length, too).
SUBJECT_MAX_CHARS = 78
#: Inboxes show about this much of the preheader.
PREHEADER_MAX_CHARS = 140

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


# --- the issue's own texts ------------------------------------------------------------------


def front_matter_strings(issue: Issue) -> Iterator[tuple[str, str]]:
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


def at_line(issue: Issue, line: int) -> str:
    """Where a line of issue.md is, such as `issue.md:12`."""
    return f"{issue.source.name}:{line}"


def _texts(issue: Issue) -> Iterator[tuple[str, str]]:
    """Every text of the issue with where it is: front-matter fields, then body lines."""
    for path, value in front_matter_strings(issue):
        yield f"front matter: {path}", value
    for number, line in enumerate(issue.body.splitlines(), start=issue.body_line):
        yield at_line(issue, number), line


def text_findings(issue: Issue) -> Iterator[Finding]:
    """Leftover placeholders and runs of exclamation marks in any text of the issue."""
    return _placeholders_and_bangs(_texts(issue))


def raw_text_findings(source: Path, text: str) -> Iterator[Finding]:
    """The same, line by line, for an issue.md that does not load (so they are not hidden)."""
    lines = enumerate(text.splitlines(), start=1)
    return _placeholders_and_bangs((f"{source.name}:{number}", line) for number, line in lines)


def _placeholders_and_bangs(texts: Iterable[tuple[str, str]]) -> Iterator[Finding]:
    for where, text in texts:
        if match := _PLACEHOLDER.search(text):
            yield error_finding(
                "placeholder-text",
                f"leftover placeholder '{match[0]}'",
                where,
                "write the final text in its place",
            )
        if match := _BANGS.search(text):
            yield warning_finding(
                "spam-exclamation",
                f"'{match[0]}': runs of exclamation marks are a classic spam-filter signal",
                where,
                "keep to one exclamation mark",
            )


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def subject_findings(issue: Issue) -> Iterator[Finding]:
    """Subjects and preheaders too long, shouting, or repeating each other."""
    subject = fill(issue.subject, {})  # merge tags at their default
    where = "front matter: subject"
    if len(subject) > SUBJECT_MAX_CHARS:
        yield warning_finding(
            "long-subject",
            f"the subject has {len(subject)} characters; inboxes cut it after about "
            f"{SUBJECT_MAX_CHARS}",
            where,
            "shorten it and put what matters first",
        )
    letters = [c for c in TAG.sub("", issue.subject) if c.isalpha()]
    capitals = [word for word in _WORD.findall(TAG.sub("", issue.subject)) if word.isupper()]
    if len(letters) >= 4 and all(c.isupper() for c in letters):
        yield warning_finding(
            "subject-all-caps",
            "the subject is in all capitals: it reads as shouting and spam filters score it",
            where,
            "write it in sentence case",
        )
    elif len(capitals) >= 2:
        yield warning_finding(
            "spam-caps",
            f"words in capitals in the subject ({', '.join(capitals)}) trip spam filters",
            where,
            "write them in lower case; keep capitals for acronyms",
        )
    if len(issue.preheader) > PREHEADER_MAX_CHARS:
        yield warning_finding(
            "long-preheader",
            f"the preheader has {len(issue.preheader)} characters; inboxes show about "
            f"{PREHEADER_MAX_CHARS}",
            "front matter: preheader",
            "shorten it",
        )
    if _normal(subject) and _normal(issue.preheader).startswith(_normal(subject)):
        yield warning_finding(
            "preheader-repeats-subject",
            "the preheader repeats the subject, wasting the preview line",
            "front matter: preheader",
            "say something the subject does not: what is inside, why open it",
        )


# --- alt texts ------------------------------------------------------------------------------


def alt_findings(issue: Issue, images: Iterable[tuple[Token, str]]) -> Iterator[Finding]:
    """Markdown images without alt text, and alt texts that look like file names."""
    alts = [
        (f"front matter: {path}", value)
        for path, value in front_matter_strings(issue)
        if path.endswith(".alt")
    ]
    for image, where in images:
        alt = "".join(child.content for child in image.children or []).strip()
        title = image.attrGet("title")
        if not alt and not markdown.is_decorative(str(title) if title else None):
            src = image.attrGet("src")
            yield error_finding(
                "missing-alt",
                f"the image '{src}' has no alt text",
                where,
                f"describe it: ![What it shows]({src}); for a purely decorative image say so "
                f'with the title: ![]({src} "{markdown.DECORATIVE}")',
            )
        alts.append((where, alt))
    for where, alt in alts:
        if _FILE_NAME.fullmatch(alt.strip()):
            yield warning_finding(
                "alt-filename",
                f"the alt text '{alt}' looks like a file name",
                where,
                "describe what the image shows",
            )


# --- links ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A link: its target (None: no href at all), its text (None: unknown) and where it is."""

    href: str | None
    text: str | None
    where: str
    named: bool = False


def _raw_links(fragment: str, where: str) -> Iterator[Link]:
    """Links written as raw HTML in the Markdown (their text is not known here)."""
    for tag in _A_TAG.finditer(fragment):
        if href := _HREF.search(tag[1]):
            yield Link(restore(next(g for g in href.groups() if g is not None)), None, where)


def markdown_items(
    issue: Issue, tokens: Sequence[Token]
) -> tuple[list[Link], list[tuple[Token, str]]]:
    """The body's links and images, each with the line of issue.md it is on."""
    links: list[Link] = []
    images: list[tuple[Token, str]] = []
    for token in tokens:
        if not token.map:
            continue
        line = issue.body_line + token.map[0]
        if token.type == "html_block":
            links += _raw_links(token.content, at_line(issue, line))
        children = token.children or []
        for index, child in enumerate(children):
            where = at_line(issue, line)
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
                links.append(Link(restore(str(child.attrGet("href") or "")), restore(text), where))
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


def link_findings(links: Iterable[Link]) -> Iterator[Finding]:
    """Links that go nowhere, over http://, or with text that says nothing on its own."""
    for link in links:
        if problem := _link_problem(link.href):
            yield error_finding(
                "bad-link",
                problem,
                link.where,
                "link to a full address such as https://example.org/page (or mailto:…)",
            )
        elif str(link.href).strip().lower().startswith("http://"):
            yield warning_finding(
                "insecure-link",
                f"'{link.href}' is an http:// link; some clients flag it as unsafe",
                link.where,
                "use https:// if the site has it",
            )
        if link.text is not None and not link.named and _vague(link.text):
            said = f"'{link.text.strip()}'" if link.text.strip() else "nothing"
            yield warning_finding(
                "vague-link-text",
                f"the link text says {said} on its own; screen-reader users hear links out "
                "of context",
                link.where,
                "say where it goes, e.g. 'read the full report on rents'",
            )
