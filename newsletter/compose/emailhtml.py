"""MJML → the email's HTML (mjml-python, then premailer), remembered between builds if asked.

Compiling the MJML and inlining its CSS is the costliest part of a first `newsletter build`,
imports included. Its result depends on nothing but the MJML text and the code that turns it
into HTML, so `newsletter build` keeps it in a cache file per issue, under a key made of both:
the MJML (which changes with the issue, the config, the templates or an image) and a recipe
holding newsletter's version, the source of the two modules that call the libraries, and for
mjml-python, premailer, cssutils, cssselect and lxml where each is installed with the size and
time of its package file, which an upgrade or a reinstall writes anew (found without importing
them, and without the ~9 ms that reading every installed package's metadata costs). Any change
of either builds the HTML again; a cache file that is missing, unreadable or for another key
is simply not used. An issue's first build, or one after an edit, still compiles and inlines,
but cssutils need not parse the CSS texts it has parsed for another build under the same
recipe (the parse memo, `MEMO`). The cache folder is safe to delete.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import __version__
from newsletter.compose.cachefiles import store

if TYPE_CHECKING:
    from newsletter.compose.inline import ParseMemo

#: The packages whose code turns MJML into the email's HTML (mjml-python's is `mjml`).
LIBRARIES = ("mjml", "premailer", "cssutils", "cssselect", "lxml")
#: Our modules that call them (their options are part of the result).
MODULES = ("compiler.py", "inline.py")
#: The file, in the cache folder, of what cssutils made of the CSS texts seen so far
#: (`inline.ParseMemo`), under the recipe's key: a new issue's CSS is mostly the same text.
MEMO = "css-parse-memo"
_WHAT = "the HTML cache"


def installed(package: str) -> str:
    """Where `package` is installed, with its file's size and modification time."""
    spec = find_spec(package)
    origin = spec.origin if spec and spec.origin else package
    try:
        status = os.stat(origin)
    except OSError:
        return f"{origin} missing"
    return f"{origin} {status.st_size} {status.st_mtime_ns}"


@cache
def recipe() -> bytes:
    """What, besides the MJML, decides the HTML: the libraries as installed, the calling code."""
    parts = [f"newsletter {__version__}".encode()]
    parts += [installed(package).encode() for package in LIBRARIES]
    parts += [(Path(__file__).parent / module).read_bytes() for module in MODULES]
    return b"\0".join(parts)


def cache_key(mjml_source: str) -> str:
    """The hex SHA-256 of the recipe and the MJML."""
    return hashlib.sha256(recipe() + b"\0" + mjml_source.encode("utf-8")).hexdigest()


def _cached(cache_file: Path, key: str) -> str | None:
    """The HTML stored in `cache_file` under `key`, or None."""
    try:
        stored_key, _, html = cache_file.read_bytes().decode("utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    return html if stored_key == key else None


def _memo_key() -> str:
    return hashlib.sha256(recipe()).hexdigest()


def _load_memo(memo_file: Path) -> ParseMemo:
    """The parse memo stored in `memo_file` for this recipe, else an empty one."""
    from newsletter.compose.inline import ParseMemo

    try:
        stored_key, _, text = memo_file.read_bytes().decode("utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return ParseMemo()
    return ParseMemo.loads(text) if stored_key == _memo_key() else ParseMemo()


def email_html(mjml_source: str, cache_file: Path | None = None) -> str:
    """The inlined HTML of an MJML document; with `cache_file`, taken from it when it holds the
    HTML of this very MJML and recipe, else made and stored in it (and what was learnt of its
    CSS kept beside it, in `MEMO`, for the next document)."""
    key = cache_key(mjml_source) if cache_file else ""
    if cache_file and (html := _cached(cache_file, key)) is not None:
        return html
    # Imported here: a build that finds its HTML in the cache never loads them (~100 ms).
    from newsletter.compose.compiler import compile_mjml
    from newsletter.compose.inline import inline_css

    if not cache_file:
        return inline_css(compile_mjml(mjml_source))
    memo_file = cache_file.parent / MEMO
    memo = _load_memo(memo_file)
    html = inline_css(compile_mjml(mjml_source), memo)
    if memo.grown:
        store(memo_file.parent, memo_file.name, f"{_memo_key()}\n{memo.dumps()}".encode(), _WHAT)
    store(cache_file.parent, cache_file.name, f"{key}\n{html}".encode(), _WHAT)
    return html
