"""An issue's page in the archive: a web page made from the issue, not the email.

It has what a web page needs (a description, Open Graph and Twitter card tags, a canonical
URL, links to the previous and next issue, a sign-up box) and none of what only an email needs
("View in browser", "you receive this because", an unsubscribe footer). Merge tags are filled
with neutral values; subjects lose their personal greeting (see `impersonal`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from newsletter.compose import markdown
from newsletter.compose.assets import Asset
from newsletter.compose.build import Prepared, archive_values, long_date
from newsletter.compose.mergetags import fill, restore
from newsletter.compose.models import Issue
from newsletter.compose.templates import render
from newsletter.config import Config

PAGE_TEMPLATE = "archive/issue.html.j2"
_PERSONAL = r"\{\{\s*subscriber\.[a-z_]+\s*(?:\|[^}]*)?\}\}"
_LEADING = re.compile(
    rf"^\s*(?:(?:hi|hello|hey|dear)\s+)?{_PERSONAL}\s*[,:;!.\u2013\u2014-]?\s*", re.I
)
_INSIDE = re.compile(rf"\s*[,;:]?\s*{_PERSONAL}")


def impersonal(text: str) -> str:
    """`text` (with merge tags) without the reader's name or address: a greeting such as
    '{{ subscriber.first_name | default("Neighbor") }}, good news' becomes 'Good news', and
    'Thanks, {{ subscriber.first_name }}!' becomes 'Thanks!'."""
    without = _LEADING.sub("", text, count=1)
    if without != text and without:
        without = without[0].upper() + without[1:]
    return " ".join(_INSIDE.sub("", without).split())


@dataclass(frozen=True)
class Neighbour:
    """The previous or next issue, as the page links to it."""

    slug: str
    subject: str
    date: str


def issue_page(
    issue: Issue,
    config: Config,
    prepared: Prepared,
    env: Environment,
    *,
    subject: str,
    description: str,
    logo: Asset | None,
    older: Neighbour | None,
    newer: Neighbour | None,
) -> str:
    """The issue's page (at `<base_url>/<slug>/`), every merge tag filled with neutral values."""
    blocks = [
        markdown.Prose(Markup(block.html)) if isinstance(block, markdown.Prose) else block
        for block in markdown.render_blocks(prepared.tokens, prepared.assets)
    ]
    hero = prepared.assets[issue.lead.image.src] if issue.lead.image else None
    image = hero or logo
    context: dict[str, Any] = {
        "config": config,
        "brand": config.brand,
        "issue": issue,
        "lead": issue.lead,
        "teasers": issue.teasers,
        "blocks": blocks,
        "subject": subject,
        "description": description,
        "date": long_date(issue.date, config),
        "url": config.issue_url(issue.slug),
        "home": f"{config.base_url.rstrip('/')}/",
        "hero": hero,
        "share_image": image.url if image and image.url.startswith("http") else None,
        "asset": prepared.assets.__getitem__,
        "logo": logo,
        "root": "../",
        "older": older,
        "newer": newer,
    }
    page = restore(render(env, PAGE_TEMPLATE, context))
    return fill(page, archive_values(config, issue.slug), is_html=True)
