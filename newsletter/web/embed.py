"""The sign-up form for other sites (`newsletter embed`): rendered from `embed/signup.html.j2`.

The form posts to `serve`'s /subscribe, which accepts it from the origins in
`web.embed_origins` (see web/app.py) and answers in JSON to the optional script.
"""

from __future__ import annotations

from newsletter.compose.templates import make_environment, render
from newsletter.config import Config

SNIPPET_TEMPLATE = "embed/signup.html.j2"


def embed_snippet(config: Config, script: bool = True) -> str:
    """The HTML to paste: a plain form, and the small script unless `script` is False."""
    context = {
        "config": config,
        "action": f"{config.base_url.rstrip('/')}/subscribe",
        "script": script,
    }
    return render(make_environment(config.root), SNIPPET_TEMPLATE, context)
