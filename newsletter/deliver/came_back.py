"""What came back about an issue, counted: the figures `status` shows, the rates that pause a
send, and the policy rejections `doctor` lists. It reads the events `feedback` stored and
imports nothing of the mail parsing, so a send starts without loading it.
"""

from __future__ import annotations

import datetime as dt

from newsletter.config import Config
from newsletter.deliver import db
from newsletter.deliver.subscribers import SubscriberStore


def issue_health(conn_store: SubscriberStore, issue: str, config: Config) -> str | None:
    """Why a send of `issue` must pause (its complaint or hard-bounce rate passed the
    configured threshold), or None."""
    conn = conn_store.conn
    inbound = config.inbound
    sent = conn.execute(
        "SELECT count(*) FROM deliveries WHERE issue = ? AND status = 'sent'", (issue,)
    ).fetchone()[0]
    if sent < inbound.pause_min_sent:
        return None
    counts = issue_feedback(conn, issue, matched_only=True)
    complaints, hard = counts["complaints"], counts["hard_bounces"]
    if complaints / sent > inbound.pause_complaint_rate:
        return (f"{complaints} complaints for {sent} copies ({complaints / sent:.2%}) pass "
                f"{inbound.pause_complaint_rate:.2%}; check the list and the content (or raise "
                "[inbound] pause_complaint_rate), then run send again")  # fmt: skip
    if hard / sent > inbound.pause_hard_bounce_rate:
        return (f"{hard} hard bounces for {sent} copies ({hard / sent:.2%}) pass "
                f"{inbound.pause_hard_bounce_rate:.2%}; the list may be old or bought: clean "
                "it (or raise [inbound] pause_hard_bounce_rate), then run send again")  # fmt: skip
    return None


#: What `issue_feedback` counts, in the order `status` shows them.
FEEDBACK_COUNTS = (
    "hard_bounces", "soft_bounces", "complaints", "policy_rejections", "mail_unsubscribes",
)  # fmt: skip
_COUNTED = {
    ("bounce", "hard"): "hard_bounces",
    ("bounce", "soft"): "soft_bounces",
    ("bounce", "policy"): "policy_rejections",
    ("complaint", ""): "complaints",
    ("unsubscribe", ""): "mail_unsubscribes",
}


def issue_feedback(
    conn: db.Connection, issue: str, *, matched_only: bool = False
) -> dict[str, int]:
    """What came back about `issue` (events not undone; with `matched_only`, only those that
    named one of our readers), by FEEDBACK_COUNTS."""
    counts = dict.fromkeys(FEEDBACK_COUNTS, 0)
    matched = " AND subscriber_id IS NOT NULL" if matched_only else ""
    for kind, klass, number in conn.execute(
        "SELECT kind, class, count(*) FROM inbound_events WHERE issue = ? AND undone_at IS NULL"
        f"{matched} GROUP BY kind, class",
        (issue,),
    ):
        name = _COUNTED.get((kind, klass if kind == "bounce" else ""))
        if name:
            counts[name] += number
    return counts


def recent_policy_rejections(conn: db.Connection, days: int) -> list[dict[str, str]]:
    """The policy rejections (flagged events) of the last `days` days, newest first."""
    since = db.stored_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    rows = conn.execute(
        "SELECT received_at, issue, status, reason FROM inbound_events WHERE kind = 'bounce'"
        " AND class = 'policy' AND undone_at IS NULL AND received_at >= ? ORDER BY id DESC",
        (since,),
    )
    return [dict(row) for row in rows]
