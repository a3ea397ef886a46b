"""The plain-text twin, written from the issue model (never scraped from the HTML).

Links become numbered references (`text [3]`) listed at the end, so the text reads cleanly and
every URL is still there to copy.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

import nh3
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from newsletter.compose.markdown import is_button, is_decorative, split_title
from newsletter.compose.mergetags import TAG, restore

WIDTH = 72


class References:
    """Numbered link references, one number per distinct URL, in order of first use."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def number(self, url: str) -> int:
        """The reference number of `url`, adding it if new."""
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def cite(self, text: str, url: str) -> str:
        """`text [n]`, or just the URL where the text is the URL itself."""
        return url if text.strip() in ("", url) else f"{text} [{self.number(url)}]"


def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Wrap one paragraph to WIDTH, never breaking a URL or a merge tag (measured restored)."""
    glued = TAG.sub(lambda tag: tag[0].replace(" ", "\0"), restore(text))
    return textwrap.fill(
        glued,
        width=WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ).replace("\0", " ")


def _strip_html(fragment: str) -> str:
    """The text of an HTML fragment; tags dropped, scripts and styles with their content."""
    return html.unescape(nh3.clean(fragment, tags=set(), attributes={})).strip()


class _Writer:
    def __init__(self, refs: References) -> None:
        self.refs = refs

    def inline(self, node: SyntaxTreeNode) -> str:
        parts = []
        for child in node.children:
            kind = child.type
            if kind in ("text", "broken_link"):
                parts.append(child.content)
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("\n")
            elif kind == "code_inline":
                parts.append(child.content)
            elif kind == "link":
                parts.append(self.refs.cite(self.inline(child), str(child.attrs["href"])))
            elif kind == "image" and not is_decorative(str(child.attrs.get("title") or "")):
                parts.append(f"[Image: {self.inline(child)}]")
            elif kind == "html_inline":
                continue
            else:
                parts.append(self.inline(child))
        return "".join(parts)

    def paragraph(self, node: SyntaxTreeNode, indent: str, first: str | None = None) -> str:
        inline = node.children[0]
        if len(inline.children) == 1 and inline.children[0].type == "link":
            link = inline.children[0]
            if is_button(link.attrs.get("title")):
                cited = self.refs.cite(self.inline(link).strip(), str(link.attrs["href"]))
                return wrap(f">> {cited}", indent, first)
        if len(inline.children) == 1 and inline.children[0].type == "image":
            image = inline.children[0]
            title = str(image.attrs.get("title") or "") or None
            if is_decorative(title):
                return ""
            caption, credit = split_title(title)
            lines = [f"[Image: {self.inline(image)}]"]
            if caption or credit:
                lines.append(" ".join(filter(None, (caption, credit and f"({credit})"))))
            return "\n".join(wrap(line, indent, first) for line in lines)
        text = self.inline(inline)
        return "\n".join(wrap(line, indent, first) for line in text.split("\n"))

    def blocks(self, nodes: Sequence[SyntaxTreeNode], indent: str = "") -> list[str]:
        return [b for node in nodes if (b := self.block(node, indent))]

    def block(self, node: SyntaxTreeNode, indent: str) -> str:
        kind = node.type
        if kind == "paragraph":
            return self.paragraph(node, indent)
        if kind == "heading":
            title = self.inline(node.children[0])
            rule = "=" if node.tag in ("h1", "h2") else "-"
            return f"{indent}{title}\n{indent}{rule * min(len(title), WIDTH)}"
        if kind in ("bullet_list", "ordered_list"):
            return self.list(node, indent)
        if kind == "blockquote":
            return "\n\n".join(self.blocks(node.children, indent + "> "))
        if kind in ("fence", "code_block"):
            return textwrap.indent(node.content.rstrip("\n"), indent + "    ")
        if kind == "hr":
            return f"{indent}{'-' * 20}"
        if kind == "table":
            return self.table(node, indent)
        if kind == "html_block":
            return wrap(_strip_html(node.content), indent)
        return "\n\n".join(self.blocks(node.children, indent))

    def table(self, node: SyntaxTreeNode, indent: str) -> str:
        """Columns padded to line up (right-aligned ones to the right); a table too wide for a
        line becomes `Header: value` lines, one group per row."""
        rows = [tr.children for section in node.children for tr in section.children]
        right = [cell.attrs.get("align") == "right" for cell in rows[0]]
        texts = [
            [
                " ".join(self.inline(cell.children[0]).split()) if cell.children else ""
                for cell in row
            ]
            for row in rows
        ]
        header, body = texts[0], texts[1:]
        widths = [max(len(row[i]) for row in texts if i < len(row)) for i in range(len(header))]
        if len(indent) + sum(widths) + 3 * (len(widths) - 1) <= WIDTH:
            lines = [
                " | ".join(
                    text.rjust(width) if flush else text.ljust(width)
                    for text, width, flush in zip(row, widths, right, strict=False)
                )
                for row in texts
            ]
            lines.insert(1, "-+-".join("-" * width for width in widths))
            return "\n".join(indent + line.rstrip() for line in lines)
        records = [
            "\n".join(
                wrap(f"{name}: {value}", indent) for name, value in zip(header, row, strict=False)
            )
            for row in body
        ]
        return "\n\n".join(records)

    def list(self, node: SyntaxTreeNode, indent: str) -> str:
        start = int(node.attrs.get("start", 1) or 1)
        items = []
        for number, item in enumerate(node.children, start=start):
            marker = f"{number}. " if node.type == "ordered_list" else "* "
            inner = indent + " " * (len(marker) + 2)
            parts = []
            for position, child in enumerate(item.children):
                if position == 0 and child.type == "paragraph":
                    parts.append(self.paragraph(child, inner, first=f"{indent}  {marker}"))
                else:
                    parts.append(self.block(child, inner))
            items.append("\n".join(parts))
        return "\n".join(items)


def body_text(tokens: Sequence[Token], refs: References) -> str:
    """The Markdown story as wrapped plain text, its links cited in `refs`."""
    root = SyntaxTreeNode(list(tokens))
    return "\n\n".join(_Writer(refs).blocks(root.children))
