"""Chart geometry for the HTML report: bars as plain numbers that the template draws in SVG.

No JavaScript and no network: every chart is inline SVG sized by its viewBox, so it scales
down to a phone's width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.analytics.figures import IssueReport

WIDTH = 600.0
HEIGHT = 160.0


@dataclass(frozen=True)
class Bar:
    """One rectangle of a chart, with its tooltip."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str


def timeline_bars(report: IssueReport) -> list[Bar]:
    """Per hour: delivered copies (left half) and clicks, people over bots (right half)."""
    hours = report.timeline
    if not hours:
        return []
    slot = WIDTH / len(hours)
    top = max(max(h["delivered"], h["people"] + h["bots"]) for h in hours) or 1
    scale = (HEIGHT - 10) / top
    bars = []
    for h in hours:
        x = h["hour"] * slot
        hour = f"hour {h['hour'] + 1}"
        if h["delivered"]:
            height = h["delivered"] * scale
            bars.append(Bar(x, HEIGHT - height, slot / 2 - 1, height, "delivered",
                            f"{hour}: {h['delivered']} delivered"))  # fmt: skip
        people, bots = h["people"] * scale, h["bots"] * scale
        if h["people"]:
            bars.append(Bar(x + slot / 2, HEIGHT - people, slot / 2 - 1, people, "people",
                            f"{hour}: {h['people']} clicks by people"))  # fmt: skip
        if h["bots"]:
            bars.append(Bar(x + slot / 2, HEIGHT - people - bots, slot / 2 - 1, bots, "bots",
                            f"{hour}: {h['bots']} clicks by scanners"))  # fmt: skip
    return bars


def link_rows(report: IssueReport) -> list[dict[str, Any]]:
    """Per link: its share of the busiest link's clicks, people and bots apart, in percent."""
    top = max((link.people + link.bots for link in report.links), default=0) or 1
    return [
        {
            "url": link.url,
            "people": link.people,
            "bots": link.bots,
            "people_pct": round(100 * link.people / top, 1),
            "bots_pct": round(100 * link.bots / top, 1),
        }
        for link in report.links
    ]
