"""The build pipeline: issue → Jinja2 renders MJML → mjml-python → premailer → HTML + text.

Every stage is a function of plain data. The disk is touched by `prepare`, which reads the
issue's images and prepares them for email (into a cache folder), and, when a caller asks for
it (`newsletter build` does), by the HTML cache of `emailhtml`; the caller (CLI, benchmark,
tests) decides where output goes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from babel.dates import format_date
from jinja2 import Environment
from markdown_it.token import Token
from markupsafe import Markup
from pydantic import BaseModel

from newsletter.compose import markdown
from newsletter.compose.assets import Asset, ImageRef, resolve_images
from newsletter.compose.colours import dark_variant
from newsletter.compose.emailhtml import email_html
from newsletter.compose.mergetags import MergeTag, fill, protect, restore, sentinel
from newsletter.compose.models import Issue
from newsletter.compose.templates import make_environment, render
from newsletter.compose.text import References, body_text, wrap
from newsletter.config import CONFIG_NAME, Config
from newsletter.errors import IssueError, Problem

#: Gmail clips messages whose HTML is larger than this.
GMAIL_CLIP_BYTES = 102 * 1024
#: `build` warns from this size on, to leave room before the clip.
WARN_BYTES = 90 * 1024
TEXT_TEMPLATE = "issue.txt.j2"
#: The email's width, and so the hero image's.
EMAIL_WIDTH = 600
#: The widest a teaser image is shown: the whole card on a phone just under 480 px, less padding.
TEASER_IMAGE_WIDTH = 432
#: Where images prepared for email are kept between builds, inside the project.
IMAGE_CACHE = Path("build", ".image-cache")
#: Where `newsletter build` keeps each issue's compiled HTML between builds, inside the project.
HTML_CACHE = Path("build", ".html-cache")


@dataclass(frozen=True)
class Prepared:
    """The parsed story and every image the email shows, measured."""

    tokens: list[Token]
    assets: Mapping[str, Asset]
    logo: Asset | None = None


@dataclass(frozen=True)
class BuiltIssue:
    """The built email: HTML and text with merge tags as placeholders, plus what it needs."""

    slug: str
    subject: str
    preheader: str
    mjml: str
    html: str
    text: str
    web_url: str
    assets: tuple[Asset, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def html_bytes(self) -> int:
        """Size of the HTML as sent (UTF-8)."""
        return len(self.html.encode("utf-8"))

    @property
    def prepared_images(self) -> tuple[str, ...]:
        """What was done to each image to make it fit for email: 'a.jpg: resized …, 3 MB → …'."""
        return tuple(f"{a.src}: {', '.join(a.changes)}" for a in self.assets if a.changes)


def image_refs(issue: Issue, tokens: list[Token]) -> list[ImageRef]:
    """Every image the issue shows, with the field or line that names it."""
    refs = []
    if issue.lead.image:
        refs.append(ImageRef(issue.lead.image.src, "lead.image.src", None, EMAIL_WIDTH))
    refs += markdown.image_refs(tokens, issue.body_line)
    refs += [
        ImageRef(teaser.image.src, f"teasers.{index}.image.src", None, TEASER_IMAGE_WIDTH)
        for index, teaser in enumerate(issue.teasers)
        if teaser.image
    ]
    return refs


def parse_story(issue: Issue) -> list[Token]:
    """The story's Markdown tokens, merge tags protected."""
    return markdown.parse_body(protect(issue.body))


def prepare(issue: Issue, config: Config) -> Prepared:
    """Parse the story, find its images and prepare them for email (the only disk access)."""
    tokens = parse_story(issue)
    base = config.issue_url(issue.slug)
    cache = config.root / IMAGE_CACHE
    refs = image_refs(issue, tokens)
    assets = resolve_images(refs, issue.folder, issue.source, base, cache)
    return Prepared(tokens, assets, logo_asset(config, base))


def logo_asset(config: Config, base: str) -> Asset | None:
    """The configured logo, prepared for email and published under `base` at images/brand/."""
    if not config.logo:
        return None
    ref = ImageRef(config.logo, "logo", None, config.brand.logo_width)
    source, cache = config.root / CONFIG_NAME, config.root / IMAGE_CACHE
    found = resolve_images([ref], config.root, source, base, cache, "images/brand")
    return found[config.logo]


def long_date(day: dt.date, config: Config) -> str:
    """The date as the email and the archive show it, in the brand's format and the
    newsletter's language: '24 November 2026', '24 novembre 2026'."""
    return format_date(day, config.brand.date_format, locale=config.language.replace("-", "_"))


#: Front-matter fields shown as running text, which get the story's typography.
SHOWN_TEXTS = frozenset({"title", "byline", "credit", "caption", "text", "label", "summary"})


Shown = TypeVar("Shown", bound=BaseModel)


def typographic_copy(model: Shown) -> Shown:
    """A copy of a front-matter model whose shown texts have typographic quotes and dashes
    (URLs, alt texts and anything else stay as written)."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            update[name] = typographic_copy(value)
        elif isinstance(value, str) and name in SHOWN_TEXTS:
            update[name] = markdown.typographic(value)
    return model.model_copy(update=update)


def _context(issue: Issue, config: Config, prepared: Prepared) -> dict[str, Any]:
    return {
        "config": config,
        "brand": config.brand,
        "dark_accent": config.brand.dark_accent or dark_variant(config.brand.accent),
        "issue": issue,
        "lead": typographic_copy(issue.lead),
        "teasers": [typographic_copy(teaser) for teaser in issue.teasers],
        "subject": protect(issue.subject),
        "preheader": protect(issue.preheader),
        "date": long_date(issue.date, config),
        "logo": prepared.logo,
        "asset": prepared.assets.__getitem__,
        "merge": lambda field: sentinel(MergeTag(field)),
        "issue_url": config.issue_url(issue.slug),
    }


def render_mjml(issue: Issue, config: Config, prepared: Prepared, env: Environment) -> str:
    """Render the issue's MJML template (merge tags as sentinels)."""
    context = _context(issue, config, prepared)
    context["blocks"] = [
        markdown.Prose(Markup(block.html)) if isinstance(block, markdown.Prose) else block
        for block in markdown.render_blocks(prepared.tokens, prepared.assets)
    ]
    return render(env, issue.template, context)


def render_text(issue: Issue, config: Config, prepared: Prepared, env: Environment) -> str:
    """Render the plain-text twin from the issue model, links as numbered references."""
    refs = References()
    context = _context(issue, config, prepared)
    context |= {
        "body": body_text(prepared.tokens, refs),
        "refs": refs,
        "wrap": wrap,
    }
    return render(env, TEXT_TEMPLATE, context)


def size_warnings(html_bytes: int) -> list[str]:
    """Warnings about the HTML's size against Gmail's clipping limit."""
    kb = html_bytes / 1024
    if html_bytes > GMAIL_CLIP_BYTES:
        return [f"the HTML is {kb:.1f} KB: Gmail clips messages over 102 KB; shorten the issue"]
    if html_bytes > WARN_BYTES:
        return [f"the HTML is {kb:.1f} KB, close to Gmail's 102 KB clipping limit"]
    return []


def link_problems(issue: Issue, tokens: Sequence[Token]) -> list[Problem]:
    """A problem for each link of the story that cannot become a link, naming its line."""
    return [
        Problem(
            f"'{restore(broken.written)}' is not a link: {broken.reason}",
            issue.source,
            broken.line,
            code="bad-link",
        )
        for broken in markdown.broken_links(tokens, issue.body_line)
    ]


def build_issue(
    issue: Issue,
    config: Config,
    env: Environment | None = None,
    prepared: Prepared | None = None,
    html_cache: Path | None = None,
) -> BuiltIssue:
    """Build an issue; IssueError if a link of the story cannot become a link. With
    `html_cache` (a folder), the HTML compiled from the same MJML before is reused."""
    prepared = prepared or prepare(issue, config)
    if problems := link_problems(issue, prepared.tokens):
        raise IssueError(*problems)
    return render_issue(issue, config, env, prepared, html_cache)


def render_issue(
    issue: Issue,
    config: Config,
    env: Environment | None = None,
    prepared: Prepared | None = None,
    html_cache: Path | None = None,
) -> BuiltIssue:
    """Render an issue into HTML, text and MJML, each with merge tags left as placeholders."""
    env = env or make_environment(config.root)
    prepared = prepared or prepare(issue, config)
    mjml_source = render_mjml(issue, config, prepared, env)
    cache_file = html_cache / f"{issue.slug}.html" if html_cache else None
    html = restore(email_html(mjml_source, cache_file))
    text = restore(render_text(issue, config, prepared, env))
    assets = {a.dest: a for a in (*prepared.assets.values(), prepared.logo) if a and a.dest}
    warnings = size_warnings(len(html.encode("utf-8")))
    warnings += [
        f"image '{a.src}' is remote and its size is unknown; give local images for Outlook"
        for a in prepared.assets.values()
        if a.width is None
    ]
    return BuiltIssue(
        slug=issue.slug,
        subject=restore(protect(issue.subject)),
        preheader=issue.preheader,
        mjml=restore(mjml_source),
        html=html,
        text=text,
        web_url=config.issue_url(issue.slug),
        assets=tuple(assets.values()),
        warnings=tuple(warnings),
    )


def preview_values(web_url: str) -> dict[str, str]:
    """Neutral merge-tag values for a copy nobody is subscribed to (previews, web copies)."""
    return {
        "subscriber.email": "reader@example.com",
        "unsubscribe_url": f"{web_url}#unsubscribe",
        "preferences_url": f"{web_url}#preferences",
        "web_url": web_url,
    }


def archive_values(config: Config, slug: str) -> dict[str, str]:
    """Merge-tag values for an issue's public page in the archive: nobody's name or links.

    The first name is left empty so its default shows ("friend") and the address is empty. A
    web copy belongs to no subscriber, so unsubscribe and preferences lead to the general
    subscribe page (`newsletter serve`'s /subscribe); `web_url` is the page itself.
    """
    subscribe = f"{config.base_url.rstrip('/')}/subscribe"
    return {
        "subscriber.email": "",
        "unsubscribe_url": subscribe,
        "preferences_url": subscribe,
        "web_url": config.issue_url(slug),
    }


def local_preview(built: BuiltIssue) -> str:
    """The HTML filled with neutral values, its images pointing at the build folder's copies."""
    html = fill(built.html, preview_values(built.web_url), is_html=True)
    return html.replace(f"{built.web_url}images/", "images/")
