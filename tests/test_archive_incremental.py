"""`newsletter archive` rebuilds only the issues whose files, templates or config changed, or
whose neighbours in the archive did."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.publish.incremental import cache_file

EXAMPLE = "2026-11-24-france-welcomes-chechen-refugees"


def run(runner: CliRunner) -> dict[str, object]:
    result = runner.invoke(app, ["archive", "--json"])
    assert result.exit_code == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def snapshot(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*") if p.is_file()}


SECOND = (
    'subject: "Second"\npreheader: "P"\ndate: 2026-12-01\nstatus: ready\nlead:\n  title: "Two"\n'
)


def touch(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_unchanged_issues_are_reused_and_the_site_is_the_same(
    runner: CliRunner, project: Path, example: Path, write_issue: Callable[..., Path]
) -> None:
    write_issue(front=SECOND + "publish: true\n", slug="two")
    assert run(runner)["rebuilt"] == 2
    site = project / "site"
    first = snapshot(site)
    assert cache_file(site).is_file()
    assert run(runner)["rebuilt"] == 0
    assert snapshot(site) == first
    issue = project / "issues" / "two" / "issue.md"
    issue.write_text(issue.read_text().replace("Two", "Deux"), encoding="utf-8")
    assert run(runner)["rebuilt"] == 1
    assert "Deux" in (site / "two" / "index.html").read_text(encoding="utf-8")
    touch(example / "images" / "hero.png")  # an image of the example changed
    assert run(runner)["rebuilt"] == 1


def test_templates_config_or_a_lost_cache_rebuild_everything(
    runner: CliRunner, project: Path, example: Path
) -> None:
    site = project / "site"
    assert run(runner)["rebuilt"] == 1
    full = snapshot(site)
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + "\n", encoding="utf-8")
    assert run(runner)["rebuilt"] == 1
    (project / "templates").mkdir(exist_ok=True)
    (project / "templates" / "extra.txt").write_text("new", encoding="utf-8")
    assert run(runner)["rebuilt"] == 1
    cache_file(site).unlink()
    assert run(runner)["rebuilt"] == 1
    cache_file(site).write_text("{not json", encoding="utf-8")
    assert run(runner)["rebuilt"] == 1
    shutil.rmtree(site)
    assert run(runner)["rebuilt"] == 1
    assert snapshot(site) == full
    assert run(runner)["rebuilt"] == 0


def test_a_page_is_made_again_when_its_neighbours_change(
    runner: CliRunner, project: Path, example: Path, write_issue: Callable[..., Path]
) -> None:
    """Publishability is decided on every run; a page linking to the next issue is remade."""
    second = write_issue(front=SECOND, slug="two")  # ready, not sent, not to be published
    report = run(runner)
    assert (report["issues"], report["left_out"], report["rebuilt"]) == (1, 1, 1)
    page = project / "site" / EXAMPLE / "index.html"
    assert "Second" not in page.read_text(encoding="utf-8")
    (second / "issue.md").write_text(
        (second / "issue.md").read_text().replace("status: ready", "status: ready\npublish: true")
    )
    report = run(runner)
    assert (report["issues"], report["rebuilt"]) == (2, 2)  # the new one, and its neighbour
    assert "Second" in page.read_text(encoding="utf-8")
    assert run(runner)["rebuilt"] == 0


def test_an_issue_sent_since_the_last_run_is_published(
    runner: CliRunner, project: Path, example: Path, write_issue: Callable[..., Path]
) -> None:
    """The sent issues are read on every run: nothing recorded hides a newly sent one."""
    write_issue(front=SECOND, slug="two")  # ready, not to be published unless sent
    assert run(runner)["issues"] == 1
    with SubscriberStore.open(project / "newsletter.db") as store:
        reader = store.add("reader@example.com")
        store.conn.execute(
            "INSERT INTO deliveries (issue, subscriber_id, status, updated_at)"
            " VALUES ('two', ?, 'sent', '2026-12-01T00:00:00+00:00')",
            (reader.id,),
        )
        store.conn.commit()
    report = run(runner)
    assert (report["issues"], report["left_out"], report["rebuilt"]) == (2, 0, 2)
    assert "Second" in (project / "site" / EXAMPLE / "index.html").read_text(encoding="utf-8")
