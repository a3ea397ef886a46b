"""CSS inlining with premailer: rules move into `style` attributes, media queries stay behind.

premailer's traps (see shared/design/measured-facts.md) are handled here: `!important` is kept
(MJML's responsive columns need it), nothing is ever fetched from the network, cssutils is
silenced, and the doctype that lxml drops is put back.
"""

from __future__ import annotations

import logging

import cssutils
import premailer

from newsletter.errors import BuildError

DOCTYPE = "<!doctype html>"
#: premailer would copy CSS `width: 100%` and `height: auto` over MJML's pixel `width` and
#: `height` attributes, which Outlook needs to size images; MJML sets those attributes itself.
KEEP_ATTRIBUTES = ["width", "height"]


def inline_css(document: str) -> str:
    """Inline the CSS of an HTML document, keeping `@media` rules and Outlook comments."""
    cssutils.log.setLevel(logging.CRITICAL)
    try:
        inlined = premailer.Premailer(
            document,
            allow_network=False,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            disable_basic_attributes=KEEP_ATTRIBUTES,
        ).transform()
    except Exception as exc:  # premailer raises bare lxml and cssutils errors
        raise BuildError(f"CSS inlining failed: {exc}") from exc
    result = str(inlined)
    if not result.lstrip().lower().startswith("<!doctype"):
        result = f"{DOCTYPE}\n{result}"
    return result
