"""The validated issue: plain frozen data that every later stage reads."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from newsletter.validation import HeaderText, IsoDate, StrictModel, Text, WebUrl

MAX_TEASERS = 20


class Image(StrictModel):
    """An image: a URL or a file inside the issue folder. `alt` may be "" for decoration."""

    src: Text
    alt: str
    caption: str | None = None
    credit: str | None = None


class CallToAction(StrictModel):
    """The lead story's button."""

    text: Text
    url: WebUrl


class Lead(StrictModel):
    """The lead story's front matter; its body is the Markdown below the front matter."""

    title: Text
    url: WebUrl | None = None
    byline: str | None = None
    credit: str | None = None
    image: Image | None = None
    cta: CallToAction | None = None


class Teaser(StrictModel):
    """A teaser card pointing to another story."""

    label: Text
    title: Text
    summary: Text
    url: WebUrl
    image: Image | None = None


class FrontMatter(StrictModel):
    """Everything between the `---` lines of issue.md."""

    subject: HeaderText
    preheader: Text
    date: IsoDate
    lead: Lead
    teasers: list[Teaser] = Field(default_factory=list)
    template: str = "issue.mjml.j2"
    #: `draft` is never sent nor published; `new` writes it. Issues without one are ready.
    status: Literal["draft", "ready"] = "ready"
    #: A ready issue with `publish: true` is in the archive before it is sent.
    publish: bool = False

    @field_validator("teasers", mode="before")
    @classmethod
    def _few_enough(cls, value: object) -> object:
        """Checked before each card is validated, so a huge list costs nothing."""
        if isinstance(value, list) and len(value) > MAX_TEASERS:
            raise ValueError(
                f"{len(value)} teaser cards; an issue may have at most {MAX_TEASERS}: "
                "move some to the next issue"
            )
        return value


class Issue(FrontMatter):
    """A whole issue: its front matter, its Markdown body and where it came from."""

    slug: str
    folder: Path
    source: Path
    body: str
    body_line: int = Field(description="line of issue.md on which the body starts")
