"""Erasure, the suppression list, a person's data, and tags from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.deliver import db
from newsletter.deliver.subscribers import ImportRow, Status, SubscriberStore
from newsletter.errors import SubscriberError

pytestmark = pytest.mark.usefixtures("each_database")

EXPORTS = Path(__file__).parent / "fixtures" / "exports"


def run(runner: CliRunner, *args: str, code: int = 0) -> Result:
    result = runner.invoke(app, ["subscribers", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def test_erased_opt_outs_never_come_back_by_import_or_add(runner: CliRunner, project: Path) -> None:
    run(runner, "import", str(EXPORTS / "mailchimp_unsubscribed.csv"))
    run(runner, "erase", "dee@example.org", "--reason", "data request")
    # Her old "subscribed" row from another export must not revive her.
    again = project / "again.csv"
    again.write_text("email,first_name\ndee@example.org,Dee\nnew@example.org,New\n")
    report = json.loads(run(runner, "import", str(again), "--json").stdout)
    assert report["imported"] == 1 and report["skipped"] == 1
    assert "erased" in report["problems"][0]["message"]
    failed = run(runner, "add", "DEE@example.org", code=2)
    assert "not added back" in failed.stderr
    with SubscriberStore.open(project / "newsletter.db") as store:
        assert store.get("dee@example.org") is None


def test_only_a_confirmed_sign_up_lifts_the_suppression(project: Path) -> None:
    with SubscriberStore.open(project / "newsletter.db") as store:
        store.add("ann@example.com")
        store.unsubscribe("ann@example.com")
        store.erase("ann@example.com")
        try:
            store.add("ann@example.com")
        except SubscriberError:
            pass
        else:
            raise AssertionError("an erased opt-out was added back")
        # The web sign-up stores a pending row; confirming makes it active and lifts it.
        store.import_rows([ImportRow(0, "ann@example.com", status=Status.PENDING)], source="web")
        pending = store.get("ann@example.com")
        assert pending is not None and pending.status == Status.PENDING
        store.set_status(pending.id, Status.ACTIVE, "confirmed by email", source="web")
        assert store.conn.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0
        assert store.add("ann@example.com").status == Status.ACTIVE


def test_the_database_keeps_no_address_of_an_erased_person(project: Path) -> None:
    with SubscriberStore.open(project / "newsletter.db") as store:
        store.add("zed@example.com", first_name="Zed", tags=["news"])
        store.erase("zed@example.com", reason="asked")
    conn = db.connect(project / "newsletter.db")
    for table in ("subscribers", "status_changes", "suppressions", "erasures", "subscriber_tags"):
        for row in conn.execute(f"SELECT * FROM {table}"):
            assert "zed" not in " ".join(str(value) for value in row).lower()
    assert conn.execute("SELECT count(*) FROM erasures").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 1


def test_show_gives_everything_held_about_a_person(runner: CliRunner, project: Path) -> None:
    run(runner, "import", str(EXPORTS / "mailchimp_subscribed.csv"))
    with SubscriberStore.open(project / "newsletter.db") as store:
        ana = store.get("ana@example.org")
        assert ana is not None
        store.conn.execute(
            "INSERT INTO deliveries (issue, subscriber_id, status, updated_at)"
            " VALUES ('2026-11-24-x', ?, 'sent', '2026-11-24T07:00:00+00:00')",
            (ana.id,),
        )
    person = json.loads(run(runner, "show", "ANA@example.org", "--json").stdout)
    assert person["email"] == "ana@example.org" and person["first_name"] == "Ana"
    assert person["tags"] == ["Heroes", "Planet"]
    assert person["attributes"]["optin_ip"] == "203.0.113.5"
    assert person["history"][0]["status"] == "active"
    assert person["deliveries"][0]["issue"] == "2026-11-24-x"
    text = run(runner, "show", "ana@example.org").stdout
    assert "optin_ip" in text and "2026-11-24-x" in text
    assert "not on the list" in run(runner, "show", "nobody@example.org", code=2).stderr


def test_tag_untag_and_tag_counts(runner: CliRunner, project: Path) -> None:
    run(runner, "add", "a@example.com")
    run(runner, "add", "b@example.com", "--tag", "weekly")
    run(runner, "tag", "a@example.com", "b@example.com", "--tag", "Heroes", "--tag", "weekly")
    run(runner, "untag", "b@example.com", "--tag", "heroes")
    run(runner, "unsubscribe", "a@example.com")
    counts = json.loads(run(runner, "tags", "--json").stdout)
    assert counts == {"Heroes": {"unsubscribed": 1}, "weekly": {"active": 1, "unsubscribed": 1}}
    table = run(runner, "tags").stdout
    assert "weekly" in table and "Heroes" in table
    assert "not on the list" in run(runner, "tag", "x@example.com", "-t", "t", code=2).stderr
