"""The click and open counts: one row per click with the issue, the link, the time, and
whether a person made it. There is no column for who clicked, by design."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from newsletter.analytics.bots import BurstDetector, Rules, agent_reason
from newsletter.analytics.links import CANARY
from newsletter.deliver import db


@dataclass(frozen=True)
class Hit:
    """One request to a click redirect, as the web app saw it."""

    issue: str
    url: str
    method: str
    user_agent: str
    client: str  # used in memory to spot bursts, never stored
    at: float


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def verdict(hit: Hit, rule_set: Rules) -> str | None:
    """Why this hit is a bot's, judged on itself alone; None when it looks like a person."""
    if hit.url.startswith(CANARY):
        return rule_set.canary_reason
    if hit.method == "HEAD":
        return rule_set.head_reason
    return agent_reason(hit.user_agent, rule_set)


def record_click(conn: db.Connection, hit: Hit, bursts: BurstDetector) -> bool:
    """Store one click (a person's or a bot's, with the reason); True if a person's."""
    reason = verdict(hit, bursts.rules)
    click_id = conn.insert(
        "INSERT INTO clicks (issue, url, clicked_at, human, reason) VALUES (?, ?, ?, ?, ?)",
        (hit.issue, hit.url, _iso(hit.at), int(reason is None), reason or ""),
    )
    if reason is None and (
        burst := bursts.burst(hit.client, hit.user_agent, hit.issue, hit.url, click_id or 0, hit.at)
    ):
        marks = ",".join("?" * len(burst))
        conn.execute(
            f"UPDATE clicks SET human = 0, reason = ? WHERE id IN ({marks})",
            (bursts.rules.burst_reason, *burst),
        )
        reason = bursts.rules.burst_reason
    return reason is None


def record_open(conn: db.Connection, issue: str, at: float) -> None:
    """Count one load of the issue's open pixel (aggregate only: no reader, no client)."""
    conn.execute("INSERT INTO opens (issue, opened_at) VALUES (?, ?)", (issue, _iso(at)))
