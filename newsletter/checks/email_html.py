"""Checks on the final HTML: its size, the footer, images (alt, width, weight) and links.

The links the templates add are found here and checked with the body's (`content.link_findings`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import lxml.html

from newsletter.checks.content import Link
from newsletter.checks.findings import Finding, error_finding, warning_finding
from newsletter.checks.page import HTML, Locator, Page
from newsletter.compose import markdown
from newsletter.compose.build import GMAIL_CLIP_BYTES, WARN_BYTES, BuiltIssue, Prepared
from newsletter.compose.mergetags import MergeTag, restore
from newsletter.config import Config

IMAGE_MAX_BYTES = 1024 * 1024
IMAGES_TOTAL_MAX_BYTES = 5 * 1024 * 1024
FOOTER_TEMPLATE = "footer.mjml.j2"


def size_findings(html_bytes: int) -> Iterator[Finding]:
    """HTML heavy enough for Gmail to clip, or close to it."""
    kb = f"{html_bytes / 1024:.1f} KB"
    if html_bytes > GMAIL_CLIP_BYTES:
        yield error_finding(
            "gmail-clip",
            f"the HTML is {kb}: Gmail clips messages over 102 KB, hiding the rest and the "
            "unsubscribe link",
            HTML,
            "shorten the issue (fewer teasers, a shorter story)",
        )
    elif html_bytes > WARN_BYTES:
        yield warning_finding(
            "near-gmail-clip",
            f"the HTML is {kb}, close to Gmail's 102 KB clipping limit",
            HTML,
            "keep the issue short enough to leave room for personalised links",
        )


def footer_findings(config: Config, page: Page) -> Iterator[Finding]:
    """A footer without the unsubscribe link or the postal address."""
    where = f"template: {FOOTER_TEMPLATE}"
    unsubscribe = MergeTag("unsubscribe_url").text
    if not any((a.get("href") or "").strip() == unsubscribe for a in page.visible("a")):
        yield error_finding(
            "missing-unsubscribe",
            "the email has no unsubscribe link",
            where,
            f"link to {unsubscribe} in the footer: <a href=\"{{{{ merge('unsubscribe_url') "
            '}}">Unsubscribe</a>',
        )
    first_line = " ".join(config.postal_address.splitlines()[0].split())
    if first_line not in page.text:
        yield error_finding(
            "missing-postal-address",
            "the email does not show the postal address (required by anti-spam laws)",
            where,
            "print {{ config.postal_address }} in the footer",
        )


def image_bytes(built: BuiltIssue) -> int:
    """The weight of the email's local images (those a reader downloads from `base_url`)."""
    return sum(asset.size_bytes or 0 for asset in built.assets)


def weight_findings(built: BuiltIssue, locate: Locator) -> Iterator[Finding]:
    """Images too heavy on their own or together."""
    for asset in built.assets:
        size = asset.size_bytes or 0
        if size > IMAGE_MAX_BYTES:
            yield warning_finding(
                "large-image",
                f"the image '{asset.src}' weighs {size / 1024 / 1024:.1f} MB even as prepared for "
                "email; it loads slowly on phones",
                locate.find(asset.url, "src"),
                "use a lighter file (under 1 MB): build resizes and compresses still images, "
                "but sends animated GIFs as they are",
            )
    total = image_bytes(built)
    if total > IMAGES_TOTAL_MAX_BYTES:
        yield warning_finding(
            "heavy-images",
            f"the images weigh {total / 1024 / 1024:.1f} MB together (over 5 MB)",
            "images",
            "use fewer or smaller images",
        )


def html_image_findings(page: Page, prepared: Prepared, locate: Locator) -> Iterator[Finding]:
    """Images of the final HTML without alt, or without a known width."""
    unknown = {asset.url for asset in prepared.assets.values() if asset.width is None}
    sizeless: set[str] = set()
    for img in page.visible("img"):
        src = img.get("src", "")
        if img.get("alt") is None:
            yield error_finding(
                "missing-alt",
                f"the image '{src}' has no alt attribute",
                locate.find(src, "src"),
                'add alt="…" describing it, or alt="" for a purely decorative image',
            )
        if (img.get("width") is None or src in unknown) and src not in sizeless:
            sizeless.add(src)
            yield warning_finding(
                "image-no-width",
                f"the image '{src}' has no width and height the email can give, so Outlook "
                "may show it at its full size",
                locate.find(src, "src"),
                "put the file in the issue folder (its size is then read) or give the <img> "
                "a width",
            )


def _anchor(element: lxml.html.HtmlElement) -> tuple[str | None, str]:
    """A link's target and text, merge tags restored, to match body links with final ones."""
    href = element.get("href")
    text = " ".join(restore(element.text_content()).split())
    return (restore(href) if href is not None else None, text)


def template_links(page: Page, prepared: Prepared, locate: Locator) -> Iterator[Link]:
    """Links of the final HTML that do not come from the Markdown body (checked on its own,
    buttons included)."""
    blocks = markdown.render_blocks(prepared.tokens, prepared.assets)
    prose = Counter(
        _anchor(a)
        for block in blocks
        if isinstance(block, markdown.Prose)
        for a in lxml.html.fragment_fromstring(block.html, create_parent="div").iter("a")
    )
    prose.update(
        (restore(b.url), " ".join(restore(b.text).split()))
        for b in blocks
        if isinstance(b, markdown.Button)
    )
    for a in page.visible("a"):
        key = _anchor(a)
        if prose[key]:
            prose[key] -= 1
            continue
        href, text = key
        text = " ".join([text, *(img.get("alt", "") for img in a.iter("img"))]).strip()
        named = bool(a.get("aria-label") or a.get("aria-labelledby"))
        yield Link(href, text, locate.find(href, "href") if href else HTML, named)
