"""The static web archive: a page per issue, an index newest first, and an Atom feed.

`build_archive` turns issues into the site's files as data; `write_archive` writes them. The
site is what gets published at `base_url`: `index.html`, `feed.xml`, and for each issue
`<slug>/index.html` and `<slug>/images/`, where the email's absolute image URLs point.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from feedgen.feed import FeedGenerator
from jinja2 import Environment

from newsletter.compose.build import BuiltIssue, archive_values, build_issue, long_date
from newsletter.compose.issues import ISSUE_FILE
from newsletter.compose.mergetags import fill
from newsletter.compose.models import Issue
from newsletter.compose.templates import make_environment, render
from newsletter.config import Config
from newsletter.errors import BuildError, InputError, IssueError, Problem
from newsletter.publish.writer import copy_file, staged

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
    page: str

    @property
    def long_date(self) -> str:
        """The date as the email shows it."""
        return long_date(self.date)


@dataclass(frozen=True)
class Archive:
    """The site as data: its entries newest first, its text files and the images to copy."""

    entries: tuple[Entry, ...]
    files: tuple[tuple[str, str], ...]
    images: tuple[tuple[str, Path], ...]


def find_issues(root: Path) -> list[Path]:
    """Every folder directly under `root/issues/` that holds an issue.md, by name."""
    return sorted(source.parent for source in (root / "issues").glob(f"*/{ISSUE_FILE}"))


def _build(issue: Issue, config: Config, env: Environment) -> BuiltIssue:
    """Build one issue; an error that does not say which issue it was in is made to."""
    try:
        return build_issue(issue, config, env)
    except InputError as exc:
        named = [
            p if p.path == issue.source else Problem(str(p), issue.source) for p in exc.problems
        ]
        raise IssueError(*named) from None
    except BuildError as exc:
        raise BuildError(f"{issue.source}: {exc}") from None


def _entry(built: BuiltIssue, issue: Issue, config: Config) -> Entry:
    """The issue's public page: the email filled with neutral values (see archive_values)."""
    values = archive_values(config, built.slug)
    return Entry(
        slug=built.slug,
        url=built.web_url,
        subject=fill(built.subject, values),
        preheader=fill(built.preheader, values),
        date=issue.date,
        page=fill(built.html, values, is_html=True),
    )


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
        content = _feed_content(entry.page)
        if len(content.encode("utf-8")) <= FEED_CONTENT_BYTES:
            item.content(content, type="html")
    return feed.atom_str(pretty=True).decode("utf-8")


def issue_page(
    issue: Issue, config: Config, env: Environment
) -> tuple[Entry, list[tuple[str, Path]]]:
    """One issue built into its entry, and its images as (path in the site, source file)."""
    built = _build(issue, config, env)
    images = [(f"{built.slug}/{a.dest}", a.file) for a in built.assets if a.file and a.dest]
    return _entry(built, issue, config), images


def build_archive(config: Config, issues: list[Issue]) -> Archive:
    """Build every issue into its page; add the index (newest first) and the feed."""
    env = make_environment(config.root)
    pages = [issue_page(issue, config, env) for issue in issues]
    return assemble(config, env, pages)


def assemble(
    config: Config, env: Environment, pages: list[tuple[Entry, list[tuple[str, Path]]]]
) -> Archive:
    """The site from its issues' pages: the pages, the index (newest first) and the feed."""
    entries = [entry for entry, _ in pages]
    images = [image for _, issue_images in pages for image in issue_images]
    entries.sort(key=lambda entry: (entry.date, entry.slug), reverse=True)
    context = {"config": config, "brand": config.brand, "entries": entries}
    files = [
        *((f"{entry.slug}/index.html", entry.page) for entry in entries),
        ("index.html", render(env, INDEX_TEMPLATE, context)),
        ("feed.xml", atom_feed(config, tuple(entries))),
    ]
    return Archive(tuple(entries), tuple(files), tuple(images))


def write_archive(archive: Archive, out: Path, unchanged: Collection[str] = ()) -> Path:
    """Write the site into `out`, atomically: the previous site stays until the new is whole.

    The files of the `unchanged` issues (slugs) are hard links to the previous site's, which
    hold the same bytes: an incremental run copies no image again.
    """
    out = out.resolve()
    with staged(out, "the archive") as staging:
        for path, text in archive.files:
            target = staging / path
            if not _linked(out, path, target, unchanged):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        for path, source in archive.images:
            if not _linked(out, path, staging / path, unchanged):
                copy_file(source, staging / path)
    return out


def _linked(previous: Path, path: str, target: Path, unchanged: Collection[str]) -> bool:
    """Hard-link `path` of an unchanged issue from the previous site; False if it cannot be."""
    if path.split("/", 1)[0] not in unchanged:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(previous / path, target)
    except OSError:  # no previous file, or a file system without hard links: write it
        return False
    return True
