"""CSS inlining with premailer: rules move into `style` attributes, media queries stay behind.

premailer's traps (see shared/design/measured-facts.md) are handled here: `!important` is kept
(MJML's responsive columns need it), nothing is ever fetched from the network, cssutils is
silenced, and the doctype that lxml drops is put back.

Two start-up costs are cut around premailer, its output unchanged (tests compare it):
- premailer imports `requests` (about 40 ms) only to fetch external stylesheets, which we never
  allow; unless something loaded it already, a stand-in takes its place that imports the real
  module on first use (a module `__getattr__`, PEP 562).
- cssutils validates every inline style against its CSS profiles, compiling large regular
  expressions on first use (about 70 ms a process), only to log what it finds, and we discard
  that log; premailer has no switch for it, so the profiles are removed.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any


def _import_on_first_use(name: str) -> None:
    """Put a stand-in for module `name` into sys.modules that imports it on first use."""
    if name in sys.modules:
        return
    stand_in = types.ModuleType(name)

    def load(attribute: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in


_import_on_first_use("requests")

import cssutils  # noqa: E402 (after the lazy registration above)
import premailer  # noqa: E402

from newsletter.errors import BuildError  # noqa: E402

cssutils.profile.removeProfile(all=True)
DOCTYPE = "<!doctype html>"


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
        ).transform()
    except Exception as exc:  # premailer raises bare lxml and cssutils errors
        raise BuildError(f"CSS inlining failed: {exc}") from exc
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = f"{DOCTYPE}\n{inlined}"
    return inlined
