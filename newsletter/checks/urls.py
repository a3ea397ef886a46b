"""Do the email's published files answer? HEAD requests, a few at a time, with a short timeout."""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

#: Requests in flight at once.
PARALLEL = 6


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src") and value]


def published_urls(html: str, base_url: str) -> list[str]:
    """Every link and image of the HTML under `base_url`, once each, in order."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    prefix = base_url.rstrip("/") + "/"
    return list(dict.fromkeys(url for url in parser.urls if url.startswith(prefix)))


def _answer(url: str, timeout: float) -> str | None:
    """None if `url` answers with a success, else why not."""
    for method in ("HEAD", "GET"):
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return None
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (405, 501):
                continue  # a server that does not do HEAD: ask for the file itself
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"no answer ({reason})"
    return "no answer"


def unreachable(urls: list[str], timeout: float = 5.0) -> list[tuple[str, str]]:
    """The URLs that do not answer, each with the reason, in the given order."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(urls))) as pool:
        answers = list(pool.map(lambda url: _answer(url, timeout), urls))
    return [(url, reason) for url, reason in zip(urls, answers, strict=True) if reason]
