"""Signed click redirects: `<base_url>/r/<issue>/<token>`, the token naming only the link.

A token is `base64url(url) . base64url(HMAC-SHA256(key, "click" | issue | url)[:16])`: the
redirect endpoint sends a visitor on only to a URL that this key signed for this issue, so it
is never an open redirect, and nothing in it says who clicked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable

CANARY = "canary:"
_HREF = re.compile(r'(\bhref=")(https?://[^"\s]+)(")', re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://[^\s<>\"]*[^\s<>\"\].,;:!?)']")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # one spelling per byte string: no aliases of a token
        raise ValueError("not canonical")
    return data


class LinkSigner:
    """Makes and checks click tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, issue: str, url: str) -> bytes:
        message = b"click\0" + issue.encode() + b"\0" + url.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16]

    def token(self, issue: str, url: str) -> str:
        """The token of `url` in `issue`."""
        return f"{_b64(url.encode())}.{_b64(self._mac(issue, url))}"

    def verify(self, issue: str, token: str) -> str | None:
        """The URL a genuine token of `issue` names; None for anything else."""
        body, _, mac = token.partition(".")
        try:
            url, given = _unb64(body).decode("utf-8"), _unb64(mac)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(given, self._mac(issue, url)):
            return None
        return url


def redirect_url(base_url: str, issue: str, token: str) -> str:
    """The public redirect URL of a click token."""
    return f"{base_url.rstrip('/')}/r/{issue}/{token}"


def _rewriter(
    signer: LinkSigner, base_url: str, issue: str, own: tuple[str, ...]
) -> Callable[[str], str]:
    def rewrite(url: str) -> str:
        # The app's own pages are never wrapped, nor a link carrying a merge tag: its
        # per-reader value must not be signed into a shared token.
        if url.startswith(own) or "{{" in url:
            return url
        return redirect_url(base_url, issue, signer.token(issue, url))

    return rewrite


def track_links(
    html: str, text: str, *, issue: str, base_url: str, signer: LinkSigner
) -> tuple[str, str]:
    """The HTML and text twin with every web link sent through the redirect, and a canary.

    The canary is a link a person cannot see or click (hidden, empty, at the end of the
    body): whatever follows it is a scanner.
    """
    base = base_url.rstrip("/")
    rewrite = _rewriter(signer, base_url, issue, (f"{base}/r/", f"{base}/unsubscribe/"))
    html = _HREF.sub(lambda m: m.group(1) + rewrite(m.group(2)) + m.group(3), html)
    text = _TEXT_URL.sub(lambda m: rewrite(m.group(0)), text)
    canary = redirect_url(base_url, issue, signer.token(issue, CANARY + issue))
    trap = (
        f'<a href="{canary}" style="display:none;font-size:0;line-height:0;max-height:0;'
        'mso-hide:all" tabindex="-1" aria-hidden="true"></a>'
    )
    html = html.replace("</body>", trap + "</body>", 1) if "</body>" in html else html + trap
    return html, text


def open_pixel_url(base_url: str, issue: str, signer: LinkSigner) -> str:
    """The issue's open pixel: one URL for every copy, so it counts loads, not readers."""
    return f"{base_url.rstrip('/')}/o/{issue}/{signer.token(issue, 'open')}.gif"


def add_open_pixel(html: str, base_url: str, issue: str, signer: LinkSigner) -> str:
    """The HTML with a one-pixel image at the end of the body that `serve` counts."""
    pixel = (
        f'<img src="{open_pixel_url(base_url, issue, signer)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    return html.replace("</body>", pixel + "</body>", 1) if "</body>" in html else html + pixel
