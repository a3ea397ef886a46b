"""CSS inlining with premailer: rules move into `style` attributes, media queries stay behind.

premailer's traps (see shared/design/measured-facts.md) are handled here: `!important` is kept
(MJML's responsive columns need it), nothing is ever fetched from the network, cssutils is
silenced, and the doctype that lxml drops is put back.

Costs are cut around premailer, its output unchanged (tests compare it with premailer's own):
- premailer imports `requests` (about 40 ms) and cssutils `urllib.request` (about 10 ms, with
  `http.client` and `ssl`) only to fetch external stylesheets, which we never allow; unless
  something loaded them already, a stand-in takes each one's place that imports the real
  module on first use (`newsletter.lazymodules`). cssutils itself (about 20 ms) gets one too.
- cssutils validates every inline style against its CSS profiles, compiling large regular
  expressions on first use (about 70 ms a process), only to log what it finds, and we discard
  that log; premailer has no switch for it, so the profiles are removed when cssutils loads.
- What cssutils makes of a CSS text depends on nothing but the text, and the same texts come
  back in every document made from the same templates: premailer's rules (and the CSS left in
  `<style>`) of each stylesheet, and the (property, value) pairs of each declaration block.
  A `ParseMemo` keeps them: in this process by default (the archive parses each distinct
  stylesheet once), or one that the caller keeps between runs (`newsletter build`: see
  `compose.emailhtml`), so a build whose CSS texts were all seen before never loads cssutils.
  premailer finds the pairs through `csstext_to_pairs`, a function it looks up by name in
  two of its modules; a remembering wrapper takes its place there.
- premailer looks for `float` in the style of every image (parsing each with cssutils) to
  add an `align` attribute; when the document never says `float`, no image can float, and
  the search is skipped.
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from newsletter.lazymodules import import_on_first_use


def _quiet(cssutils: types.ModuleType) -> None:
    """Once cssutils is loaded: no validation against CSS profiles, no log."""
    cssutils.profile.removeProfile(all=True)
    cssutils.log.setLevel(logging.CRITICAL)


import_on_first_use("requests")
import_on_first_use("urllib.request")
import_on_first_use("cssutils", on_load=_quiet)

import premailer  # noqa: E402 (after the lazy registrations above)
import premailer.merge_style  # noqa: E402
import premailer.premailer  # noqa: E402

from newsletter.errors import BuildError  # noqa: E402

DOCTYPE = "<!doctype html>"
#: premailer would copy CSS `width: 100%` and `height: auto` over MJML's pixel `width` and
#: `height` attributes, which Outlook needs to size images; MJML sets those attributes itself.
KEEP_ATTRIBUTES = ["width", "height"]
#: A rule as premailer makes it: (specificity, selector, declarations).
Rule = tuple[tuple[int, ...], str, str]
#: Bounds of a memo: beyond them it starts afresh (texts differ only with the templates), so
#: that a memo file stays small enough to read in a few milliseconds.
MAX_STYLESHEETS = 16
MAX_BLOCKS = 5_000


@dataclass
class ParseMemo:
    """What cssutils made of CSS texts before, to skip parsing them again.

    `rules`: for each stylesheet (by its position in the document and its text), premailer's
    rules and the CSS left in `<style>` (empty if none); `pairs`: for each declaration block
    (and whether premailer asked to validate it), its (property, value) pairs. `grown` says
    whether it learnt anything since it was made or loaded, i.e. whether to store it again.
    """

    rules: dict[str, tuple[list[Rule], str]] = field(default_factory=dict)
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    grown: bool = False

    def dumps(self) -> str:
        """The memo as JSON text."""
        return json.dumps({"rules": self.rules, "pairs": self.pairs}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> ParseMemo:
        """The memo that `dumps` wrote; an empty one for anything else."""
        try:
            data = json.loads(text)
            rules = {
                key: ([(tuple(spec), str(sel), str(bulk)) for spec, sel, bulk in found], str(left))
                for key, (found, left) in data["rules"].items()
            }
            pairs = {
                key: [(str(name), str(value)) for name, value in found]
                for key, found in data["pairs"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()
        return cls(rules, pairs)


_PROCESS_MEMO = ParseMemo()
#: The memo of the document being inlined (a context variable: threads each have their own).
_memo: ContextVar[ParseMemo] = ContextVar("parse_memo", default=_PROCESS_MEMO)
_parse_pairs: Callable[..., list[tuple[str, str]]] = premailer.merge_style.csstext_to_pairs


def _remembered_pairs(csstext: str, validate: bool = True) -> list[tuple[str, str]]:
    """premailer's `csstext_to_pairs`, answered from the memo when it has seen `csstext`."""
    memo = _memo.get()
    key = f"{int(validate)}{csstext}"
    found = memo.pairs.get(key)
    if found is None:
        found = _parse_pairs(csstext, validate=validate)
        if len(memo.pairs) >= MAX_BLOCKS:
            memo.pairs.clear()
        memo.pairs[key] = found
        memo.grown = True
    return found


# premailer's own function refers to itself by this name, for its lock.
_remembered_pairs._lock = _parse_pairs._lock  # type: ignore[attr-defined]
premailer.premailer.csstext_to_pairs = _remembered_pairs
premailer.merge_style.csstext_to_pairs = _remembered_pairs


class _MemoPremailer(premailer.Premailer):  # type: ignore[misc]  # premailer is untyped
    """premailer, taking the rules of each stylesheet from the memo when it has seen it.

    The CSS that stays in `<style>` is kept as text: `_parse_style_rules` returns it as the
    left-over list's one item (premailer only asks whether that list is empty) and
    `_css_rules_to_string` gives it back.
    """

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Rule], list[str]]:
        memo = _memo.get()
        key = f"{ruleset_index}:{css_body}"
        if key not in memo.rules:
            rules, leftover = super()._parse_style_rules(css_body, ruleset_index)
            text = super()._css_rules_to_string(leftover) if leftover else ""
            if len(memo.rules) >= MAX_STYLESHEETS:
                memo.rules.clear()
            memo.rules[key] = (rules, text)
            memo.grown = True
        rules, text = memo.rules[key]
        return list(rules), [text] if text else []

    def _css_rules_to_string(self, rules: list[str]) -> str:
        return "\n".join(rules)


def inline_css(document: str, memo: ParseMemo | None = None) -> str:
    """Inline the CSS of an HTML document, keeping `@media` rules and Outlook comments.

    `memo`: what earlier runs learnt of the CSS texts (default: this process's memo); it
    learns this document's too.
    """
    token = _memo.set(memo if memo is not None else _PROCESS_MEMO)
    try:
        inlined: str = _MemoPremailer(
            document,
            allow_network=False,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            disable_validation=True,
            disable_basic_attributes=KEEP_ATTRIBUTES,
            align_floating_images="float" in document.lower() or "\\" in document,
        ).transform()
    except Exception as exc:  # premailer raises bare lxml and cssutils errors
        raise BuildError(f"CSS inlining failed: {exc}") from exc
    finally:
        _memo.reset(token)
    result = str(inlined)
    if not result.lstrip().lower().startswith("<!doctype"):
        result = f"{DOCTYPE}\n{result}"
    return result
