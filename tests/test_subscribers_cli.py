"""`newsletter subscribers ...` end to end: real project folder, real CSV files, real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.deliver.subscribers import Status, SubscriberStore

pytestmark = pytest.mark.usefixtures("each_database")


def run(runner: CliRunner, *args: str, code: int = 0) -> Result:
    result = runner.invoke(app, ["subscribers", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def stored(project: Path) -> SubscriberStore:
    return SubscriberStore.open(project / "newsletter.db")


@pytest.fixture
def csv_file(project: Path) -> Path:
    path = project / "people.csv"
    path.write_text(
        "Email;First_Name;Tags;Plan\n"
        "ann@example.com;Ann;news|vip;pro\n"
        "bad-address;Bob;;\n"
        "carl@example.com;Carl;news;free\n",
        encoding="utf-8-sig",
    )
    return path


def test_import_reports_bad_rows_and_a_summary(
    runner: CliRunner, project: Path, csv_file: Path
) -> None:
    result = run(runner, "import", str(csv_file))
    assert result.stdout.splitlines()[0] == "Imported 2, updated 0, skipped 1."
    assert result.stdout.splitlines()[1] == "By status: 2 active"
    assert result.stderr.startswith(f"Warning: {csv_file}:3: 'bad-address' is not a valid email")
    with stored(project) as store:
        ann = store.get("ann@example.com")
        assert ann is not None
        assert (ann.tags, ann.attributes) == (("news", "vip"), {"plan": "pro"})
        assert store.history(ann.id)[0]["source"] == "import:people.csv"


def test_import_again_updates_and_skips_the_unsubscribed(
    runner: CliRunner, project: Path, csv_file: Path
) -> None:
    run(runner, "import", str(csv_file))
    run(runner, "unsubscribe", "carl@example.com", "--reason", "too many emails")
    result = run(runner, "import", str(csv_file), "--json")
    report = json.loads(result.stdout)
    assert (report["imported"], report["updated"], report["skipped"]) == (0, 1, 2)
    assert [problem["line"] for problem in report["problems"]] == [3, 4]
    assert report["problems"][1]["message"].startswith("carl@example.com unsubscribed on ")
    assert result.stderr == ""
    with stored(project) as store:
        assert store.count(status=Status.ACTIVE) == 1


def test_import_of_a_file_without_email_column_exits_2(runner: CliRunner, project: Path) -> None:
    path = project / "wrong.csv"
    path.write_text("name,city\nAnn,Paris\n", encoding="utf-8")
    result = run(runner, "import", str(path), code=2)
    assert result.stderr.startswith(f"Error: {path}:1: has no email column")
    assert run(runner, "import", str(project / "missing.csv"), code=2).stderr.startswith("Error: ")


def test_add_update_list_and_filters(runner: CliRunner, project: Path) -> None:
    added = run(
        runner, "add", "Ann@Example.com", "--first-name", "Ann", "--tag", "news", "-t", "vip"
    )
    assert added.stdout.strip() == "Added Ann@example.com."
    assert run(runner, "add", "ann@example.com", "--last-name", "Lee").stdout.startswith("Updated")
    run(runner, "add", "bob@example.com", "--tag", "vip")
    run(runner, "unsubscribe", "bob@example.com")

    table = run(runner, "list").stdout
    assert "Ann@example.com" in table and "Ann Lee" in table and "news, vip" in table
    assert "unsubscribed" in table

    listed = json.loads(run(runner, "list", "--status", "active", "--json").stdout)
    assert [(s["email"], s["last_name"], s["tags"]) for s in listed] == [
        ("Ann@example.com", "Lee", ["news", "vip"])
    ]
    assert json.loads(run(runner, "list", "--tag", "vip", "--json").stdout)[1]["status"] == (
        "unsubscribed"
    )
    assert json.loads(run(runner, "list", "--tag", "nope", "--json").stdout) == []
    assert run(runner, "list", "--tag", "nope").stdout.strip() == "No subscribers match."
    assert run(runner, "list", "--status", "sleeping", code=2).exit_code == 2


def test_add_refuses_the_unsubscribed_and_header_injection(
    runner: CliRunner, project: Path
) -> None:
    run(runner, "add", "eve@example.com")
    run(runner, "unsubscribe", "eve@example.com")
    refused = run(runner, "add", "eve@example.com", code=2)
    assert refused.stderr.startswith("Error: eve@example.com unsubscribed on ")
    assert "not resubscribed" in refused.stderr
    injected = run(
        runner, "add", "x@example.com", "--first-name", "Eve\r\nBcc: x@evil.example", code=2
    )
    assert "line break or control character" in injected.stderr
    assert run(runner, "add", "not-an-address", code=2).stderr.startswith("Error: 'not-an-address'")
    with stored(project) as store:
        assert store.count() == 1


def test_remove_and_unsubscribe_of_unknown_address_exit_2(runner: CliRunner, project: Path) -> None:
    for command in ("remove", "unsubscribe"):
        result = run(runner, command, "nobody@example.com", code=2)
        assert (
            result.stderr.strip()
            == "Error: nobody@example.com is not on the list; check the address"
        )


def test_remove_erases(runner: CliRunner, project: Path) -> None:
    run(runner, "add", "ann@example.com")
    assert run(runner, "remove", "ANN@example.com").stdout.startswith("Erased ANN@example.com")
    with stored(project) as store:
        assert store.count() == 0


@pytest.mark.sqlite_only  # starts again by deleting the SQLite file
def test_export_to_stdout_and_file_round_trips(
    runner: CliRunner, project: Path, csv_file: Path
) -> None:
    run(runner, "import", str(csv_file))
    run(runner, "unsubscribe", "carl@example.com")
    stdout = run(runner, "export", "--status", "active").stdout
    assert stdout.splitlines() == [
        "email,first_name,last_name,tags,status,status_changed_at,attributes",
        stdout.splitlines()[1],
    ]
    assert stdout.splitlines()[1].startswith("ann@example.com,Ann,,news|vip,active,")

    out = project / "all.csv"
    assert run(runner, "export", "--out", str(out)).stdout.strip() == (
        f"Exported 2 subscribers to {out}."
    )
    (project / "newsletter.db").unlink()
    assert run(runner, "import", str(out)).stdout.startswith("Imported 2, updated 0, skipped 0.\n")
    with stored(project) as store:
        assert store.count(status=Status.ACTIVE) == 1
        assert store.count(status=Status.UNSUBSCRIBED) == 1
