"""Imports from the services people leave: statuses, tags, times; nobody who left comes back."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver.services import FORMATS, timestamp
from newsletter.deliver.subscribers import Status, SubscriberStore

pytestmark = pytest.mark.usefixtures("each_database")

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
MAILCHIMP = ("mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv", "mailchimp_cleaned.csv")


def _import(runner: CliRunner, name: str, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["subscribers", "import", str(EXPORTS / name), "--json", *args])
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def _people(project: Path) -> dict[str, tuple[Status, tuple[str, ...]]]:
    with SubscriberStore.open(project / "newsletter.db") as store:
        return {s.email: (s.status, s.tags) for s in store.iter()}


@pytest.mark.parametrize("order", list(itertools.permutations(MAILCHIMP)))
def test_mailchimp_files_in_any_order(
    runner: CliRunner, project: Path, order: tuple[str, ...]
) -> None:
    for name in order:
        assert _import(runner, name)["format"] == "mailchimp"
    people = _people(project)
    assert people["ana@example.org"] == (Status.ACTIVE, ("Heroes", "Planet"))
    assert people["bo@example.net"] == (Status.ACTIVE, ("Planet",))
    assert people["cy@example.com"][0] == Status.UNSUBSCRIBED  # in two files: never revived
    assert people["dee@example.org"] == (Status.UNSUBSCRIBED, ("Heroes",))
    assert people["gone@example.net"][0] == Status.BOUNCED


def test_mailchimp_keeps_the_original_time_reason_and_consent(
    runner: CliRunner, project: Path
) -> None:
    _import(runner, "mailchimp_unsubscribed.csv")
    _import(runner, "mailchimp_cleaned.csv")
    with SubscriberStore.open(project / "newsletter.db") as store:
        dee = store.get("dee@example.org")
        gone = store.get("gone@example.net")
        assert dee is not None and gone is not None
        assert dee.status_changed_at == "2024-03-04T05:06:07+00:00"
        assert "no longer want" in dee.status_reason
        assert dee.attributes["optin_time"] == "2022-01-01 10:00:00"
        assert gone.status_changed_at == "2023-11-12T13:14:15+00:00"
        assert "cleaned" in gone.status_reason
        history = store.history(dee.id)
        assert history[-1]["changed_at"] == "2024-03-04T05:06:07+00:00"


def test_substack_disabled_email_is_unsubscribed(runner: CliRunner, project: Path) -> None:
    report = _import(runner, "substack.csv")
    assert report["format"] == "substack"
    assert report["statuses"] == {"active": 2, "unsubscribed": 1}
    people = _people(project)
    assert people["gil@example.net"][0] == Status.UNSUBSCRIBED
    assert people["fay@example.com"][0] == Status.ACTIVE


def test_buttondown_types_and_tags(runner: CliRunner, project: Path) -> None:
    report = _import(runner, "buttondown.csv")
    assert report["format"] == "buttondown"
    people = _people(project)
    assert people["hal@example.org"] == (Status.ACTIVE, ("Heroes", "Planet"))
    assert people["ivy@example.com"][0] == Status.UNSUBSCRIBED
    assert people["jo@example.net"] == (Status.PENDING, ("Planet",))
    assert people["kim@example.org"][0] == Status.BOUNCED
    with SubscriberStore.open(project / "newsletter.db") as store:
        hal = store.get("hal@example.org")
        assert hal is not None and hal.first_name == "Hal"


def test_listmonk_blocklisted_is_unsubscribed(runner: CliRunner, project: Path) -> None:
    report = _import(runner, "listmonk.csv")
    assert report["format"] == "listmonk"
    with SubscriberStore.open(project / "newsletter.db") as store:
        lea, max_ = store.get("lea@example.org"), store.get("max@example.com")
        assert lea is not None and max_ is not None
        assert (lea.first_name, lea.last_name, lea.status) == ("Lea", "Moreau", Status.ACTIVE)
        assert lea.attributes["city"] == "Lyon"
        assert max_.status == Status.UNSUBSCRIBED
        assert max_.status_changed_at == "2024-07-08T09:10:11+00:00"


def test_dry_run_counts_without_writing(runner: CliRunner, project: Path) -> None:
    _import(runner, "mailchimp_subscribed.csv")
    report = _import(runner, "mailchimp_unsubscribed.csv", "--dry-run")
    assert report["dry_run"] is True
    assert report["statuses"] == {"unsubscribed": 2}
    assert _people(project)["cy@example.com"][0] == Status.ACTIVE  # nothing changed
    text = runner.invoke(app, ["subscribers", "import", str(EXPORTS / "substack.csv"), "--dry-run"])
    assert "Would import 3" in text.stdout and "Dry run: nothing was changed." in text.stdout
    assert "gil@example.net" not in _people(project)


def test_forced_format_and_an_unknown_one(runner: CliRunner, project: Path) -> None:
    report = _import(runner, "substack.csv", "--format", "generic")
    assert report["format"] == "generic"
    result = runner.invoke(app, ["subscribers", "import", str(EXPORTS / "substack.csv"),
                                 "--format", "mailman"])  # fmt: skip
    assert result.exit_code == 2 and "unknown format 'mailman'" in result.stderr


def test_timestamps_from_every_service() -> None:
    assert timestamp("2024-03-04 05:06:07") == "2024-03-04T05:06:07+00:00"
    assert timestamp("2024-02-03T04:05:06.000Z") == "2024-02-03T04:05:06+00:00"
    assert timestamp("2024-07-08 09:10:11.000000+02:00") == "2024-07-08T07:10:11+00:00"
    assert timestamp("") is None and timestamp("last Tuesday") is None


def test_the_help_names_every_format(runner: CliRunner) -> None:
    """The option's help is written out (the CLI starts without loading the formats)."""
    result = runner.invoke(app, ["subscribers", "import", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert all(name in result.stdout for name in FORMATS)
