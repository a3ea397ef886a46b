"""CSS inlining with premailer: rules move into `style` attributes, media queries stay behind.

premailer's traps (see shared/design/measured-facts.md) are handled here: `!important` is kept
(MJML's responsive columns need it), nothing is ever fetched from the network, cssutils is
silenced, and the doctype that lxml drops is put back.

Costs are cut around premailer, its output unchanged (tests compare it):
- premailer imports `requests` (about 40 ms) and cssutils `urllib.request` (about 10 ms, with
  `http.client` and `ssl`) only to fetch external stylesheets, which we never allow; unless
  something loaded them already, a stand-in takes each one's place that imports the real
  module on first use (`newsletter.lazymodules`).
- cssutils validates every inline style against its CSS profiles, compiling large regular
  expressions on first use (about 70 ms a process), only to log what it finds, and we discard
  that log; premailer has no switch for it, so the profiles are removed.
- premailer turns each `<style>` block into rules again for every document, though its
  parse of the CSS text is cached: the rules are cached too, by CSS text and block number,
  so a run over many issues (the archive) does it once per distinct stylesheet.
- premailer looks for `float` in the style of every image (parsing each with cssutils) to
  add an `align` attribute; when the document never says `float`, no image can float, and
  the search is skipped.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from newsletter.lazymodules import import_on_first_use

import_on_first_use("requests")
import_on_first_use("urllib.request")

import cssutils  # noqa: E402 (after the lazy registration above)
import premailer  # noqa: E402

from newsletter.errors import BuildError  # noqa: E402

cssutils.profile.removeProfile(all=True)
DOCTYPE = "<!doctype html>"
#: premailer would copy CSS `width: 100%` and `height: auto` over MJML's pixel `width` and
#: `height` attributes, which Outlook needs to size images; MJML sets those attributes itself.
KEEP_ATTRIBUTES = ["width", "height"]
#: Rules that premailer made from a stylesheet, by (CSS text, position of its block).
_Rules = tuple[list[Any], list[Any]]


class _CachedRules(premailer.Premailer):  # type: ignore[misc]  # premailer is untyped
    """premailer, keeping the rules it derives from each stylesheet for the next document."""

    _rules: ClassVar[dict[tuple[str, int], _Rules]] = {}

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> _Rules:
        key = (css_body, ruleset_index)
        if key not in self._rules:
            if len(self._rules) >= 64:  # a bound: stylesheets differ only with templates
                self._rules.clear()
            self._rules[key] = super()._parse_style_rules(css_body, ruleset_index)
        return self._rules[key]


def inline_css(document: str) -> str:
    """Inline the CSS of an HTML document, keeping `@media` rules and Outlook comments."""
    cssutils.log.setLevel(logging.CRITICAL)
    try:
        inlined: str = _CachedRules(
            document,
            allow_network=False,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            disable_basic_attributes=KEEP_ATTRIBUTES,
            align_floating_images="float" in document.lower() or "\\" in document,
        ).transform()
    except Exception as exc:  # premailer raises bare lxml and cssutils errors
        raise BuildError(f"CSS inlining failed: {exc}") from exc
    result = str(inlined)
    if not result.lstrip().lower().startswith("<!doctype"):
        result = f"{DOCTYPE}\n{result}"
    return result
