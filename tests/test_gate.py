"""Nothing unfinished goes out: drafts and issues with check errors are refused, and stay off
the site; a forced send is recorded; the confirmation shows what readers will see."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from typer.testing import CliRunner

from newsletter.cli import console
from newsletter.cli.app import app
from newsletter.deliver.db import connect
from newsletter.deliver.history import overrides
from newsletter.deliver.subscribers import SubscriberStore

FRONT = """\
subject: '{{{{ subscriber.first_name | default("friend") }}}}, the {name} issue'
preheader: "Worth opening, {{{{ subscriber.first_name }}}}"
date: {date}
status: {status}
lead:
  title: "The {name} headline"
"""
TODO_BODY = "TODO: write the story.\n"


@pytest.fixture
def issue(write_issue: Callable[..., Path]) -> Callable[..., Path]:
    def make(
        name: str, status: str = "ready", body: str = "A finished story.\n", *,
        date: str = "2026-11-24", extra: str = "",
    ) -> Path:  # fmt: skip
        front = FRONT.format(name=name, status=status, date=date) + extra
        return write_issue(front=front, body=body, slug=f"{date}-{name}")

    return make


@pytest.fixture
def readers(project: Path) -> SubscriberStore:
    store = SubscriberStore.open(project / "newsletter.db")
    store.add("ada@example.com", "Ada", "Lovelace", tags=("early",))
    store.add("alan@example.com", "Alan", "Turing")
    return store


def outbox(project: Path, slug: str) -> list[email.message.EmailMessage]:
    folder = project / "outbox" / slug / "new"
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in files
    ]


def run(runner: CliRunner, *args: str, **kwargs: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), **kwargs)
    return result.exit_code, result.stdout, result.stderr


def test_send_refuses_a_draft(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    folder = issue("draft", status="draft")
    code, _, err = run(runner, "send", str(folder), "--yes")
    assert code == 2
    assert "is a draft" in err and "status: ready" in err
    assert outbox(project, folder.name) == []
    code, _, err = run(runner, "send", str(folder), "--yes", "--force")
    assert code == 2 and "is a draft" in err


def test_send_refuses_check_errors_and_names_them(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    folder = issue("todo", body=TODO_BODY)
    code, _, err = run(runner, "send", str(folder), "--yes")
    assert code == 2
    assert "placeholder-text: leftover placeholder 'TODO'" in err
    assert "1 check error(s) and was not sent" in err and "--force" in err
    assert outbox(project, folder.name) == []


def test_force_sends_and_the_ledger_keeps_what_was_overridden(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    folder = issue("todo", body=TODO_BODY)
    code, _, err = run(runner, "send", str(folder), "--yes", "--force")
    assert code == 0, err
    assert "check error overridden by --force" in err
    assert len(outbox(project, folder.name)) == 2
    [errors] = overrides(connect(project / "newsletter.db"), folder.name)
    assert errors == ["issue.md:9: placeholder-text: leftover placeholder 'TODO'"]
    status = json.loads(runner.invoke(app, ["status", str(folder), "--json"]).stdout)
    assert status["forced_past"] == [errors] and status["counts"]["sent"] == 2
    shown = runner.invoke(app, ["status", str(folder)]).stdout
    assert "Sent with --force past: issue.md:9: placeholder-text" in shown


def test_a_test_send_of_a_draft_says_so_in_the_subject(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    folder = issue("draft", status="draft", body=TODO_BODY)
    code, _, err = run(runner, "send", str(folder), "--test", "ada@example.com")
    assert code == 0, err
    [message] = outbox(project, folder.name)
    assert message["Subject"] == "[TEST] [DRAFT] Ada, the draft issue"
    code, _, _ = run(runner, "archive")
    assert code == 0
    assert not (project / "site" / folder.name).exists()


def test_archive_publishes_sent_and_ready_to_publish_issues_never_drafts(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    draft = issue("draft", status="draft", body=TODO_BODY, date="2026-11-01")
    early = issue("early", extra="publish: true\n", date="2026-11-02")
    sent = issue("sent", date="2026-11-03")
    waiting = issue("waiting", date="2026-11-04")
    tested = issue("tested", date="2026-11-05")
    assert run(runner, "send", str(sent), "--yes")[0] == 0
    assert run(runner, "send", str(tested), "--test", "ada@example.com")[0] == 0
    code, out, err = run(runner, "archive")
    assert code == 0, err
    site = project / "site"
    published = {path.parent.name for path in site.glob("*/index.html")}
    assert published == {early.name, sent.name, "2026-11-24-france-welcomes-chechen-refugees"}
    assert {draft.name, waiting.name, tested.name}.isdisjoint(published)
    everything = "".join(p.read_text() for p in site.rglob("*") if p.suffix in (".html", ".xml"))
    assert "TODO" not in everything and "the draft issue" not in everything
    feed = feedparser.parse((site / "feed.xml").read_text())
    titles = [entry.title for entry in feed.entries]
    assert titles == [
        "France opens its doors to gay men fleeing Chechnya",
        "The sent issue",
        "The early issue",
    ]
    assert "Archived 3 issues" in out and "left out: 3 (drafts" in out


def test_the_confirmation_shows_what_a_reader_sees(
    runner: CliRunner,
    project: Path,
    issue: Callable[..., Path],
    readers: SubscriberStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "interactive", lambda: True)
    folder = issue("asked")
    code, _, err = run(runner, "send", str(folder), "--tag", "early", input="n\n")
    assert code == 1
    lines = [line.rstrip() for line in err.splitlines()]
    assert "Subject:    Ada, the asked issue" in lines
    assert "Preheader:  Worth opening, Ada" in lines
    assert "            (as ada@example.com sees them)" in lines
    assert "Segment:    subscribers tagged early" in lines
    assert "Recipients: 1" in lines
    assert "Transport:  outbox" in lines
    assert outbox(project, folder.name) == []
    code, _, err = run(runner, "send", str(folder), input="y\n")
    assert code == 0, err
    assert "Recipients: 2" in err
    assert len(outbox(project, folder.name)) == 2


def test_without_a_terminal_a_send_needs_yes(
    runner: CliRunner, project: Path, issue: Callable[..., Path], readers: SubscriberStore
) -> None:
    code, _, err = run(runner, "send", str(issue("plain")))
    assert code == 2 and "add --yes" in err
