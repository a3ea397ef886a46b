"""The report as one self-contained HTML page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from newsletter.analytics.charts import HEIGHT, WIDTH, link_rows, timeline_bars
from newsletter.analytics.figures import IssueReport
from newsletter.compose.templates import make_environment, render
from newsletter.config import Config


def report_page(report: IssueReport, config: Config) -> str:
    """The issue's report page, with the newsletter's colours."""
    context = {
        "config": config,
        "report": report,
        "bars": timeline_bars(report),
        "links": link_rows(report),
        "width": int(WIDTH),
        "height": int(HEIGHT),
    }
    return render(make_environment(config.root), "report/issue.html.j2", context)
