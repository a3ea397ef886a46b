"""`newsletter status` without an issue: every issue and where it stands."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver import db
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.schedule import ScheduleStore
from newsletter.deliver.subscribers import SubscriberStore

pytestmark = pytest.mark.usefixtures("each_database")

FRONT = """\
subject: "Issue {name}"
preheader: "Something worth opening"
date: 2026-11-24
status: {status}
lead:
  title: "A headline"
"""


def test_every_issue_with_its_state(
    runner: CliRunner, project: Path, write_issue: Callable[..., Path]
) -> None:
    readers = SubscriberStore.open(project / "newsletter.db")
    for name in ("ada", "alan"):
        readers.add(f"{name}@example.com", name.title())
    for name in ["a-draft", "b-ready", "c-sent", "d-later", "e-claimed", "f-half", "h-missed"]:
        status = "draft" if name == "a-draft" else "ready"
        write_issue(front=FRONT.format(name=name, status=status), slug=name)
    (project / "issues" / "g-broken").mkdir()
    (project / "issues" / "g-broken" / "issue.md").write_text("no front matter\n")
    assert runner.invoke(app, ["send", "issues/c-sent", "--yes"]).exit_code == 0
    conn = db.connect(project / "newsletter.db")
    schedules = ScheduleStore(conn)
    now = dt.datetime.now(dt.UTC)
    due = dt.datetime(2099, 12, 4, 6, 0, tzinfo=dt.UTC)
    schedules.add("d-later", "issues/d-later", due, "Europe/Paris", now)
    schedules.add("e-claimed", "issues/e-claimed", now + dt.timedelta(seconds=1), "UTC", now)
    assert schedules.claim_due("w", now + dt.timedelta(seconds=2), dt.timedelta(minutes=5))
    long_ago = dt.datetime(2020, 3, 1, 8, 0, tzinfo=dt.UTC)
    schedules.add("h-missed", "issues/h-missed", long_ago, "UTC", long_ago - dt.timedelta(days=1))
    schedules.mark_missed(now, dt.timedelta(hours=1))
    half = Ledger(conn, "f-half")
    half.enqueue()
    [job] = half.claim(1)
    half.mark(job.subscriber_id, "sent", "250 OK")
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.stderr
    states = {row["issue"]: row["state"] for row in json.loads(result.stdout)}
    assert states.pop("2026-11-24-france-welcomes-chechen-refugees") == "ready"
    assert re.fullmatch(r"sent on \d{4}-\d\d-\d\d \d\d:\d\d UTC to 2", states.pop("c-sent"))
    assert states == {
        "a-draft": "draft",
        "b-ready": "ready",
        "d-later": "scheduled for 2099-12-04 07:00 CET",
        "e-claimed": "sending",
        "f-half": "sending (1 sent, 1 to go)",
        "g-broken": "unreadable (run newsletter check on it)",
        "h-missed": "ready; the send scheduled for 2020-03-01 08:00 UTC missed: "
        "not sent: the worker was not running at the time",
    }
    table = runner.invoke(app, ["status"], terminal_width=120)
    assert "a-draft" in table.stdout and "scheduled for 2099-12-04 07:00 CET" in table.stdout


def test_an_empty_project_says_how_to_start(runner: CliRunner, tmp_path: Path) -> None:
    init = runner.invoke(
        app,
        ["init", str(tmp_path), "--name", "N", "--sender", "n@example.org",
         "--base-url", "https://n.example.org", "--postal-address", "1 Road"],
    )  # fmt: skip
    assert init.exit_code == 0, init.stderr
    for issue in (tmp_path / "issues").iterdir():
        (issue / "issue.md").unlink()
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "newsletter.toml")])
    assert "No issues yet" in result.stdout
