"""The question before a real send: what readers will see, who gets it, and how it goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from newsletter.cli import console
from newsletter.errors import InputError, Problem

if TYPE_CHECKING:  # the library loads when a command runs, for a fast start-up
    from newsletter.compose.build import BuiltIssue
    from newsletter.config import Config
    from newsletter.deliver.message import Recipient
    from newsletter.deliver.segments import Segment

#: Who the prompt fills merge tags for when nobody is pending.
NOBODY = "reader@example.com"


def prompt_lines(
    config: Config, built: BuiltIssue, segment: Segment, count: int, sample: Recipient,
    transport: str,
) -> list[str]:  # fmt: skip
    """The lines shown before asking: subject and preheader filled for `sample`, and the rest."""
    from newsletter.compose.mergetags import fill
    from newsletter.deliver.message import copy_values

    values = copy_values(sample, "…", config.base_url, built.web_url)
    return [
        f"Subject:    {fill(built.subject, values)}",
        f"Preheader:  {fill(built.preheader, values)}",
        f"            (as {sample.email} sees them)",
        f"Segment:    {segment.describe()}",
        f"Recipients: {count}",
        f"Transport:  {transport}",
    ]


def confirm_send(
    config: Config, built: BuiltIssue, segment: Segment, uncertain: bool, transport: str
) -> None:
    """Show what is about to go out and ask; exit 1 on no, InputError without a terminal."""
    from newsletter.deliver.db import connect
    from newsletter.deliver.ledger import Ledger
    from newsletter.deliver.message import Recipient

    if not console.interactive():
        raise InputError(Problem("no terminal to confirm on; add --yes to send", code="bad-option"))
    ledger = Ledger(connect(config.database_location), built.slug)
    count = ledger.count_pending(segment, uncertain, unqueued=True)
    first = next(ledger.pending(segment, uncertain, batch_size=1, unqueued=True), None)
    sample = (
        Recipient(first.email, first.first_name, first.last_name, first.subscriber_id)
        if first
        else Recipient(NOBODY)
    )
    for line in prompt_lines(config, built, segment, count, sample, transport):
        console.err.print(escape(line))
    if not typer.confirm("Send now?"):
        raise typer.Exit(1)
