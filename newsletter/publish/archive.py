"""The static web archive, the newsletter's public home: an index newest first with a sign-up
form, a web page per issue (publish/pages.py) and an Atom feed.

`build_archive` turns issues into the site's files as data (`publish/incremental.py` does it
reusing what has not changed); `write_archive` writes them. The
site is what gets published at `base_url`: `index.html`, `feed.xml`, `images/brand/` (the
logo), and for each issue `<slug>/index.html` and `<slug>/images/`, where the email's absolute
image URLs point.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment

from newsletter.compose.assets import Asset
from newsletter.compose.build import (
    BuiltIssue,
    Prepared,
    archive_values,
    build_issue,
    logo_asset,
    long_date,
    prepare,
)
from newsletter.compose.mergetags import fill
from newsletter.compose.models import Issue
from newsletter.compose.templates import make_environment, render
from newsletter.config import Config
from newsletter.errors import BuildError, InputError, IssueError, Problem
from newsletter.publish.generation import updated
from newsletter.publish.pages import Neighbour, impersonal, issue_page

INDEX_TEMPLATE = "archive/index.html.j2"
#: A feed entry carries the email's body as its content only up to this size.
FEED_CONTENT_BYTES = 64 * 1024
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Entry:
    """One archived issue: what the index and the feed say about it, and its page."""

    slug: str
    url: str
    subject: str
    preheader: str
    date: dt.date
    content: str  # the email's body as a web copy, the feed's content (see `_feed_content`)
    #: The date as the email shows it.
    long_date: str


@dataclass(frozen=True)
class Archive:
    """The site as data: its entries newest first, its text files and the images to copy."""

    entries: tuple[Entry, ...]
    files: tuple[tuple[str, str], ...]
    images: tuple[tuple[str, Path], ...]


def is_public(status: str, publish: bool, slug: str, sent: Collection[str]) -> bool:
    """Whether the public may see an issue: sent to subscribers, or `ready` with `publish: true`.

    A draft never is, even one that was sent before it was turned back into a draft.
    """
    return status != "draft" and (slug in sent or publish)


def _build(issue: Issue, config: Config, env: Environment) -> tuple[BuiltIssue, Prepared]:
    """Build one issue; an error that does not say which issue it was in is made to."""
    try:
        prepared = prepare(issue, config)
        return build_issue(issue, config, env, prepared), prepared
    except InputError as exc:
        named = [
            p if p.path == issue.source else Problem(str(p), issue.source, code=p.code)
            for p in exc.problems
        ]
        raise IssueError(*named) from None
    except BuildError as exc:
        raise BuildError(f"{issue.source}: {exc}") from None


def _entry(built: BuiltIssue, issue: Issue, config: Config) -> Entry:
    """What the index and the feed say about an issue: subject and preheader as readers saw
    them, without anyone's name (see `impersonal`), and the email filled with neutral values."""
    values = archive_values(config, built.slug)
    return Entry(
        slug=built.slug,
        url=built.web_url,
        subject=fill(impersonal(built.subject), values),
        preheader=fill(impersonal(built.preheader), values),
        date=issue.date,
        content=_feed_content(fill(built.html, values, is_html=True)),
        long_date=long_date(issue.date, config),
    )


def site_logo(config: Config) -> Asset | None:
    """The logo as the site publishes it (at images/brand/), or its https URL."""
    return logo_asset(config, f"{config.base_url.rstrip('/')}/")


def _neighbour(entry: Entry | None) -> Neighbour | None:
    return Neighbour(entry.slug, entry.subject, entry.long_date) if entry else None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _feed_content(page: str) -> str:
    """The page's body without comments: Outlook's conditional markup means nothing in a feed.

    MJML's `<!--[if mso]>...<![endif]-->` blocks are whole comments, and its `<!--[if !mso]><!-->`
    ... `<!--<![endif]-->` pairs are two comments around markup every client shows, so dropping
    every comment keeps exactly what non-Outlook readers see.
    """
    body = _BODY.search(page)
    return _COMMENT.sub("", body[1] if body else page).strip()


def atom_feed(config: Config, entries: tuple[Entry, ...]) -> str:
    """The Atom feed of the archive, entries in the given order (newest first)."""
    from feedgen.feed import FeedGenerator  # lxml: loaded only by the archive, not by `build`

    home = f"{config.base_url.rstrip('/')}/"
    feed = FeedGenerator()
    feed.id(home)
    feed.title(config.name)
    feed.author(name=config.name)
    feed.language(config.language)
    feed.link(href=f"{home}feed.xml", rel="self")
    feed.link(href=home, rel="alternate")
    if entries:
        feed.updated(_midnight(max(entry.date for entry in entries)))
    for entry in entries:
        item = feed.add_entry(order="append")
        item.id(entry.url)
        item.title(entry.subject)
        item.link(href=entry.url, rel="alternate")
        item.updated(_midnight(entry.date))
        item.summary(entry.preheader)
        if len(entry.content.encode("utf-8")) <= FEED_CONTENT_BYTES:
            item.content(entry.content, type="html")
    return str(feed.atom_str(pretty=True).decode("utf-8"))


#: Makes an issue's page, given the issues before and after it (older, newer).
PageMaker = Callable[[Neighbour | None, Neighbour | None], str]


@dataclass(frozen=True)
class Piece:
    """One issue ready for the site: its entry, its images, and how to make its page."""

    entry: Entry
    images: tuple[tuple[str, Path], ...]
    page: PageMaker


def page_maker(issue: Issue, config: Config, env: Environment, logo: Asset | None, entry: Entry,
               prepared: Prepared | None = None) -> PageMaker:  # fmt: skip
    """How to make the issue's page (preparing the issue first unless `prepared` is given)."""

    def make(older: Neighbour | None, newer: Neighbour | None) -> str:
        return issue_page(
            issue, config, prepared or prepare(issue, config), env, subject=entry.subject,
            description=entry.preheader, logo=logo, older=older, newer=newer,
        )  # fmt: skip

    return make


def build_piece(issue: Issue, config: Config, env: Environment, logo: Asset | None) -> Piece:
    """Build one issue for the site."""
    built, prepared = _build(issue, config, env)
    entry = _entry(built, issue, config)
    images = tuple((f"{built.slug}/{a.dest}", a.file) for a in built.assets if a.file and a.dest)
    return Piece(entry, images, page_maker(issue, config, env, logo, entry, prepared))


def assemble(config: Config, env: Environment, logo: Asset | None, pieces: list[Piece]) -> Archive:
    """The site from its issues: their pages, the index (newest first) and the feed."""
    images: list[tuple[str, Path]] = (
        [(logo.dest, logo.file)] if logo and logo.file and logo.dest else []
    )
    pieces = sorted(pieces, key=lambda piece: (piece.entry.date, piece.entry.slug), reverse=True)
    entries = [piece.entry for piece in pieces]
    files = []
    for number, piece in enumerate(pieces):
        newer = entries[number - 1] if number else None
        older = entries[number + 1] if number + 1 < len(entries) else None
        page = piece.page(_neighbour(older), _neighbour(newer))
        files.append((f"{piece.entry.slug}/index.html", page))
        images += piece.images
    context = {"config": config, "brand": config.brand, "entries": entries, "logo": logo,
               "root": "", "home": f"{config.base_url.rstrip('/')}/"}  # fmt: skip
    files += [
        ("index.html", render(env, INDEX_TEMPLATE, context)),
        ("feed.xml", atom_feed(config, tuple(entries))),
    ]
    return Archive(tuple(entries), tuple(files), tuple(images))


def build_archive(config: Config, issues: list[Issue]) -> Archive:
    """Build every issue into its page; add the index (newest first) and the feed."""
    env, logo = make_environment(config.root), site_logo(config)
    return assemble(config, env, logo, [build_piece(issue, config, env, logo) for issue in issues])


def write_archive(
    archive: Archive, out: Path, protect: Sequence[Path] = (), unchanged: Collection[str] = ()
) -> Path:
    """Write the site into `out`, atomically: the previous site stays until the new is whole
    (see `generation` for how, and what it refuses to replace).

    The files of the `unchanged` issues (slugs) are hard links to the previous site's, which
    hold the same bytes: an incremental run copies no image again.
    """
    out = out.resolve()
    with updated(out, "the archive", protect) as site:
        for path, text in archive.files:
            if not (_issue_of(path) in unchanged and site.link(path)):
                site.write_text(path, text)
        for path, source in archive.images:
            if not (_issue_of(path) in unchanged and site.link(path)):
                site.copy(path, source)
    return out


def _issue_of(path: str) -> str:
    """The slug of the issue a file of the site belongs to (its first folder)."""
    return path.split("/", 1)[0]
