"""The lead story's Markdown: parsed once, then cut into prose blocks and captioned figures.

This is the only module that imports the Markdown library. Raw HTML in the Markdown is allowed
and sanitized here (nh3, an allow-list), so no script, event handler, form or `javascript:` URL
survives into an email.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.compose.assets import Asset, ImageRef

#: Width in pixels of the story column in the email (600 px less 2 x 24 px padding).
CONTENT_WIDTH = 552

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small",
    "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "*": {"lang", "dir"},
}


def sanitize(fragment: str) -> str:
    """Keep only safe tags, attributes and URL schemes (http, https, mailto) of an HTML fragment."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
        strip_comments=True,
    )


def display_size(asset: Asset, max_width: int = CONTENT_WIDTH) -> tuple[int | None, int | None]:
    """The width and height an image is shown at: its own, scaled down to fit `max_width`."""
    if not asset.width or not asset.height:
        return None, None
    width = min(asset.width, max_width)
    return width, round(asset.height * width / asset.width)


def _render_image(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    token = tokens[idx]
    asset: Asset = env["assets"][str(token.attrGet("src"))]
    alt = self.renderInlineAsText(token.children or [], options, env)
    width, height = display_size(asset)
    size = f' width="{width}" height="{height}"' if width else ""
    return f'<img src="{html.escape(asset.url)}" alt="{html.escape(alt)}"{size}>'


_md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_md.add_render_rule("image", _render_image)


def parse_body(body: str) -> list[Token]:
    """Parse Markdown into markdown-it tokens."""
    return _md.parse(body)


@dataclass(frozen=True)
class Prose:
    """A run of sanitized HTML: paragraphs, headings, lists, quotes."""

    html: str


@dataclass(frozen=True)
class Figure:
    """An image standing alone in its paragraph, with the caption and credit from its title."""

    image: Asset
    alt: str
    caption: str | None
    credit: str | None


Block = Prose | Figure


#: The image title that says an image with empty alt text is purely decorative, on purpose.
DECORATIVE = "decorative"


def is_decorative(title: str | None) -> bool:
    """True for the title `"decorative"` of `![](rule.png "decorative")` (not a caption)."""
    return (title or "").strip().lower() == DECORATIVE


def split_title(title: str | None) -> tuple[str | None, str | None]:
    """`"Caption | Credit"` → ("Caption", "Credit"); either part may be absent."""
    if not title or is_decorative(title):
        return None, None
    caption, _, credit = title.partition("|")
    return caption.strip() or None, credit.strip() or None


def _lone_image(tokens: Sequence[Token], index: int) -> Token | None:
    """The image token if tokens[index:index+3] is a paragraph holding only an image."""
    if tokens[index].type != "paragraph_open" or tokens[index].level != 0:
        return None
    children = [
        c for c in (tokens[index + 1].children or []) if not (c.type == "text" and not c.content)
    ]
    return children[0] if len(children) == 1 and children[0].type == "image" else None


def image_refs(tokens: Sequence[Token], first_line: int) -> list[ImageRef]:
    """Every image the Markdown mentions, with its line in the issue file."""
    refs = []
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                line = first_line + token.map[0] if token.map else None
                refs.append(ImageRef(str(child.attrGet("src")), None, line, CONTENT_WIDTH))
    return refs


def render_blocks(tokens: Sequence[Token], assets: Mapping[str, Asset]) -> list[Block]:
    """Cut the story into sanitized prose blocks and figures, images pointing at their URLs."""
    env = {"assets": assets}
    blocks: list[Block] = []
    run: list[Token] = []

    def flush() -> None:
        if run:
            blocks.append(Prose(sanitize(_md.renderer.render(run, _md.options, env))))
            run.clear()

    index = 0
    while index < len(tokens):
        image = _lone_image(tokens, index)
        if image is None:
            run.append(tokens[index])
            index += 1
            continue
        flush()
        caption, credit = split_title(image.attrGet("title") and str(image.attrGet("title")))
        alt = "".join(child.content for child in image.children or [])
        blocks.append(Figure(assets[str(image.attrGet("src"))], alt, caption, credit))
        index += 3
    flush()
    return blocks
