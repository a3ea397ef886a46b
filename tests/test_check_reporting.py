"""How `check` reports: build's line numbers, warnings beside errors, each finding once, dates;
the scaffold's merge-tag subject; `preview` on a port that is taken."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app

WriteIssue = Callable[..., Path]

BROKEN_FRONT = """\
subject: "Big news!!"
preheader: "Something worth opening"
date: {date}
lead:
  title: "A small headline"
  url: "not a url"
teasers:
  - label: Next
    title: "TODO"
"""


def _check(runner: CliRunner, folder: Path) -> tuple[int, list[dict[str, str]]]:
    result = runner.invoke(app, ["check", str(folder), "--json"])
    return result.exit_code, json.loads(result.stdout)["findings"]


@pytest.mark.parametrize("date", ["2026-13-24", "24/11/2026", "'next week'"])
def test_a_wrong_date_says_yyyy_mm_dd(
    write_issue: WriteIssue, runner: CliRunner, date: str
) -> None:
    folder = write_issue(BROKEN_FRONT.format(date=date))
    built = runner.invoke(app, ["build", str(folder)])
    assert built.exit_code == 2
    assert "issue.md:4: date: " in built.stderr and "write it as YYYY-MM-DD" in built.stderr
    assert "unexpected" not in built.stderr
    code, findings = _check(runner, folder)
    assert code == 1
    dated = [f for f in findings if "(date)" in f["where"]]
    assert [(f["where"], f["fix"]) for f in dated] == [
        ("issue.md:4 (date)", "write it as YYYY-MM-DD")
    ]


def test_check_gives_the_lines_build_gives(write_issue: WriteIssue, runner: CliRunner) -> None:
    folder = write_issue(BROKEN_FRONT.format(date="2026-13-24"))
    built = runner.invoke(app, ["build", str(folder)])
    build_lines = set(re.findall(r"issue\.md:(\d+): ([\w.]+):", built.stderr))
    assert build_lines == {("4", "date"), ("7", "lead.url"), ("9", "teasers.0.summary"),
                           ("9", "teasers.0.url")}  # fmt: skip
    _, findings = _check(runner, folder)
    check_lines = {
        match.groups()
        for f in findings
        if (match := re.fullmatch(r"issue\.md:(\d+) \(([\w.]+)\)", f["where"]))
    }
    assert check_lines == build_lines


def test_warnings_show_beside_errors(write_issue: WriteIssue, runner: CliRunner) -> None:
    folder = write_issue(BROKEN_FRONT.format(date="2026-11-24"), "Hello!! TODO.\n")
    result = runner.invoke(app, ["check", str(folder)])
    assert result.exit_code == 1
    assert re.search(r"warning issue\.md:2 +spam-exclamation", result.stdout)
    assert re.search(r"warning issue\.md:12 +spam-exclamation", result.stdout)
    assert re.search(r"error +issue\.md:12 +placeholder-text", result.stdout)
    assert re.search(r"\d+ errors, 2 warnings", result.stdout)


def test_an_issue_that_does_not_build_still_has_its_texts_checked(
    write_issue: WriteIssue, runner: CliRunner
) -> None:
    body = "Hello!!\n\n![A chart](images/one.png)\n\n![A map](images/two.png)\n\nTODO\n"
    code, findings = _check(runner, write_issue(body=body))
    assert code == 1
    found = {(f["code"], f["where"]) for f in findings}
    assert {
        ("missing-image", "issue.md:10"),
        ("missing-image", "issue.md:12"),
        ("placeholder-text", "issue.md:14"),
        ("spam-exclamation", "issue.md:8"),
    } <= found


def test_each_finding_once(write_issue: WriteIssue, runner: CliRunner) -> None:
    body = "[Read more](https://example.org/a) or [Read more](https://example.org/a).\n"
    _, findings = _check(runner, write_issue(body=body))
    keys = [(f["code"], f["where"], f["message"]) for f in findings]
    assert len(keys) == len(set(keys))
    assert ("vague-link-text", "issue.md:8") in [(code, where) for code, where, _ in keys]


def test_the_scaffolds_merge_tag_subject_parses(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["new", "Five things", "--date", "2026-12-01"])
    assert result.exit_code == 0, result.stderr
    issue = project / "issues" / "2026-12-01-five-things" / "issue.md"
    text = issue.read_text()
    example = next(line for line in text.splitlines() if "subject:" in line and "{{" in line)
    subject = example.lstrip("# ").strip()
    issue.write_text(re.sub(r"(?m)^subject: .*$", lambda _: subject, text))
    built = runner.invoke(app, ["build", str(issue.parent), "--json"])
    assert built.exit_code == 0, built.stderr
    assert json.loads(built.stdout)["subject"] == (
        '{{ subscriber.first_name | default("Friend") }}, Five things'  # canonical quotes
    )


def test_preview_moves_to_a_free_port_when_its_own_is_taken(example: Path, project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "preview", str(example), "--port", str(port)],
            cwd=project, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            notice = process.stderr.readline()
            match = re.fullmatch(
                rf"Port {port} is in use by another program; using port (\d+) instead\.\n", notice
            )
            assert match, notice
            url = f"http://127.0.0.1:{match[1]}/"
            assert f"at {url} " in process.stderr.readline()
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}state.json", timeout=5) as response:
                        assert json.loads(response.read())["version"]
                        break
                except OSError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=10)
