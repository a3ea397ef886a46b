"""Per-subscriber merge tags: found in the issue, carried through the pipeline, filled per copy.

An editor writes `{{ subscriber.first_name | default("friend") }}`, `{{ subscriber.email }}`,
`{{ unsubscribe_url }}` or `{{ web_url }}` in the subject or the body. Before Markdown sees
the text, the build swaps each tag for a letters-and-digits sentinel (the tag hex-encoded) that
Markdown, Jinja2, MJML and premailer all leave alone (no quotes, braces or spaces to escape or
rewrite, in `href`s too), then decodes the canonical tag text back into the final HTML and
text. Sending compiles each built document once into a `MergeTemplate` and fills it per
subscriber by joining strings: no pipeline per copy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Every field a merge tag may name, with what it means.
FIELDS: Mapping[str, str] = {
    "subscriber.first_name": "the subscriber's first name",
    "subscriber.last_name": "the subscriber's last name",
    "subscriber.email": "the subscriber's address",
    "unsubscribe_url": "the subscriber's own one-click unsubscribe link",
    "preferences_url": "the subscriber's own manage-preferences link",
    "web_url": "the issue's web copy (the 'View in browser' link)",
}

TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_EXPR = re.compile(
    r"""^\s*(?P<field>[a-z_]+(?:\.[a-z_]+)?)\s*
        (?:\|\s*default\(\s*(?P<q>["'])(?P<default>[^"'{}]*)(?P=q)\s*\)\s*)?$""",
    re.X,
)
_SENTINEL = re.compile(r"xnlmt([0-9a-f]+)x")


class MergeTagError(ValueError):
    """A merge tag is unknown, malformed or unclosed; `offset` is where it starts."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class MergeTag:
    """One merge tag: the field it fills and the text used when the value is empty."""

    field: str
    default: str = ""

    @property
    def text(self) -> str:
        """The canonical tag as it stands in built files."""
        if self.default:
            return f'{{{{ {self.field} | default("{self.default}") }}}}'
        return f"{{{{ {self.field} }}}}"


def parse_tag(expression: str, offset: int = 0) -> MergeTag:
    """Parse the inside of `{{ ... }}` into a MergeTag, or raise MergeTagError."""
    match = _EXPR.match(expression)
    if not match:
        raise MergeTagError(f"malformed merge tag '{{{{{expression}}}}}'", offset)
    field = match["field"]
    if field not in FIELDS:
        known = ", ".join(FIELDS)
        raise MergeTagError(f"unknown merge tag '{field}' (known: {known})", offset)
    return MergeTag(field, match["default"] or "")


def find_tags(text: str) -> list[tuple[int, MergeTag]]:
    """Every merge tag in `text` with its offset; raises MergeTagError on a bad or unclosed one."""
    found = [(m.start(), parse_tag(m[1], m.start())) for m in TAG.finditer(text)]
    tail = TAG.sub(lambda m: " " * len(m[0]), text)
    unclosed = tail.find("{{")
    if unclosed >= 0:
        raise MergeTagError("unclosed merge tag '{{' (close it with '}}')", unclosed)
    return found


def line_of(text: str, offset: int) -> int:
    """1-based line number of `offset` in `text`."""
    return text.count("\n", 0, offset) + 1


def sentinel(tag: MergeTag) -> str:
    """The pipeline-proof stand-in for `tag`: its text, hex-encoded between two markers."""
    return f"xnlmt{tag.text.encode().hex()}x"


def protect(text: str) -> str:
    """Replace every merge tag in `text` by its sentinel (tags must be valid)."""
    return TAG.sub(lambda m: sentinel(parse_tag(m[1], m.start())), text)


def restore(text: str) -> str:
    """Put the canonical tag text back in place of every sentinel."""
    return _SENTINEL.sub(lambda m: bytes.fromhex(m[1]).decode(), text)


class MergeTemplate:
    """A built document compiled once, filled per subscriber by joining strings."""

    def __init__(self, document: str, escape: Callable[[str], str] = str) -> None:
        literals: list[str] = []
        tags: list[MergeTag] = []
        start = 0
        for offset, tag in find_tags(document):
            literals.append(document[start:offset])
            tags.append(tag)
            start = document.index("}}", offset) + 2
        literals.append(document[start:])
        #: The text around the tags: one more literal than there are tags.
        self.literals: tuple[str, ...] = tuple(literals)
        self.tags: tuple[MergeTag, ...] = tuple(tags)
        self._escape = escape

    @classmethod
    def for_html(cls, document: str) -> MergeTemplate:
        """Compile an HTML document: values are HTML-escaped (safe in text and attributes)."""
        return cls(document, escape=html.escape)

    @property
    def fields(self) -> frozenset[str]:
        """The fields this document needs."""
        return frozenset(tag.field for tag in self.tags)

    def fill(self, values: Mapping[str, str]) -> str:
        """The document with every tag replaced by its value, or its default when empty."""
        parts = [self.literals[0]]
        for tag, literal in zip(self.tags, self.literals[1:], strict=True):
            parts.append(self._escape(values.get(tag.field) or tag.default))
            parts.append(literal)
        return "".join(parts)


def fill(document: str, values: Mapping[str, str], *, is_html: bool = False) -> str:
    """Fill every merge tag of one document (compile once with MergeTemplate to fill many)."""
    template = MergeTemplate.for_html(document) if is_html else MergeTemplate(document)
    return template.fill(values)
