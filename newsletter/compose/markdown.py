"""The lead story's Markdown: parsed once, then cut into prose blocks, captioned figures and
buttons.

This is the only module that imports the Markdown library. Raw HTML in the Markdown is allowed
and sanitized here (nh3, an allow-list), so no script, event handler, form or `javascript:` URL
survives into an email. Quotes, dashes and ellipses become typographic ones (markdown-it's
typographer). A link written like a link that markdown-it refuses to make one (a `javascript:`
URL, a space in the URL) is kept as a `broken_link` token, for the build to stop at.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
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


#: `[text](target)` as written: the link text and the target (one level of parentheses).
_WRITTEN_LINK = re.compile(r"\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(((?:[^()\n]|\([^()\n]*\))*)\)")


def _broken_link(state: StateInline, silent: bool) -> bool:
    """Keep a written link that the `link` rule (tried before) refused, as one token."""
    if state.src[state.pos] != "[":
        return False
    match = _WRITTEN_LINK.match(state.src, state.pos)
    if match is None:
        return False
    if not silent:
        token = state.push("broken_link", "", 0)
        token.content = match[0]
        token.meta = {"target": match[2], "line": state.src.count("\n", 0, state.pos)}
    state.pos = match.end()
    return True


def _render_broken_link(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    return html.escape(tokens[idx].content)


def _table_alignment(state: Any) -> None:
    """Column alignment as the `align` attribute email clients and the sanitizer keep (left
    unless the Markdown says otherwise: headers are centred by default)."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", "text-align:left"))
            token.attrSet("align", style.partition(":")[2])


_md = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
    ["table", "strikethrough", "replacements", "smartquotes"]
)
_md.inline.ruler.push("broken_link", _broken_link)
_md.core.ruler.push("table_alignment", _table_alignment)
_md.add_render_rule("image", _render_image)
_md.add_render_rule("broken_link", _render_broken_link)


#: Only the typographer: for plain texts, in which nothing else is Markdown.
_plain = MarkdownIt("zero", {"typographer": True}).enable(["replacements", "smartquotes"])


def typographic(text: str) -> str:
    """A plain text with the story's typography: curly quotes and apostrophes, en dashes for
    `--`, an ellipsis for `...`."""
    tokens = _plain.parseInline(text)
    return "".join(child.content for child in tokens[0].children or []) if tokens else text


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


@dataclass(frozen=True)
class Button:
    """A call-to-action button: a link titled "button", alone in its paragraph."""

    text: str
    url: str


Block = Prose | Figure | Button

#: The link title that makes a link alone in its paragraph a button: `[Give](url "button")`.
BUTTON = "button"


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


def is_button(title: object) -> bool:
    """True for the link title `"button"` of `[Give](https://… "button")`."""
    return str(title or "").strip().lower() == BUTTON


def _alone(tokens: Sequence[Token], index: int) -> list[Token]:
    """The inline tokens of tokens[index:index+3] if it is a top-level paragraph, else []."""
    if tokens[index].type != "paragraph_open" or tokens[index].level != 0:
        return []
    return [
        c for c in (tokens[index + 1].children or []) if not (c.type == "text" and not c.content)
    ]


def _lone_image(tokens: Sequence[Token], index: int) -> Token | None:
    """The image token if tokens[index:index+3] is a paragraph holding only an image."""
    children = _alone(tokens, index)
    return children[0] if len(children) == 1 and children[0].type == "image" else None


def _lone_button(children: Sequence[Token]) -> Button | None:
    """The button if these inline tokens are one link titled "button" and nothing else."""
    if len(children) < 2 or children[0].type != "link_open" or children[-1].type != "link_close":
        return None
    if not is_button(children[0].attrGet("title")):
        return None
    if any(child.type in ("link_open", "link_close") for child in children[1:-1]):
        return None
    text = "".join(child.content for child in children[1:-1] if child.type != "softbreak")
    return Button(text.strip(), str(children[0].attrGet("href")))


def image_refs(tokens: Sequence[Token], first_line: int) -> list[ImageRef]:
    """Every image the Markdown mentions, with its line in the issue file."""
    refs = []
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                line = first_line + token.map[0] if token.map else None
                refs.append(ImageRef(str(child.attrGet("src")), None, line, CONTENT_WIDTH))
    return refs


@dataclass(frozen=True)
class BrokenLink:
    """A link as written that is not one, its line in the issue file, and why."""

    line: int
    written: str
    reason: str


def _why_not_a_link(target: str) -> str:
    url = target.strip()
    if any(char.isspace() for char in url.split(' "')[0].split(" '")[0]):
        return "its URL contains a space; write it as %20, or put the URL in <angle brackets>"
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme and scheme.isalpha() and scheme not in ("http", "https", "mailto"):
        return f"'{scheme}:' URLs are not allowed in email; link to an https:// page"
    return "Markdown cannot read it as a link; check the brackets and the URL"


def broken_links(tokens: Sequence[Token], first_line: int) -> list[BrokenLink]:
    """Every `[text](target)` of the Markdown that did not become a link, where and why."""
    found = []
    for token in tokens:
        for child in token.children or []:
            if child.type == "broken_link":
                line = first_line + (token.map[0] if token.map else 0) + child.meta["line"]
                found.append(BrokenLink(line, child.content, _why_not_a_link(child.meta["target"])))
    return found


def render_blocks(tokens: Sequence[Token], assets: Mapping[str, Asset]) -> list[Block]:
    """Cut the story into sanitized prose blocks, figures and buttons, images at their URLs."""
    env = {"assets": assets}
    blocks: list[Block] = []
    run: list[Token] = []

    def flush() -> None:
        if run:
            blocks.append(Prose(sanitize(_md.renderer.render(run, _md.options, env))))
            run.clear()

    index = 0
    while index < len(tokens):
        button = _lone_button(_alone(tokens, index))
        if button is not None:
            flush()
            blocks.append(button)
            index += 3
            continue
        image = _lone_image(tokens, index)
        if image is None:
            run.append(tokens[index])
            index += 1
            continue
        flush()
        title = image.attrGet("title")
        caption, credit = split_title(str(title) if title else None)
        alt = "".join(child.content for child in image.children or [])
        blocks.append(Figure(assets[str(image.attrGet("src"))], alt, caption, credit))
        index += 3
    flush()
    return blocks
