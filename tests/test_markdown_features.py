"""What the editor writes: buttons, tables, hard line breaks, typographic quotes, broken links."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose.build import BuiltIssue, build_issue
from newsletter.compose.issues import load_issue
from newsletter.config import load_config

WriteIssue = Callable[..., Path]

BODY = """\
Hi {{ subscriber.first_name | default("friend") }}, "quoted" and 'single' -- it's done...

Line one\\
line two  
line three

| Fruit | Count |
|-------|------:|
| Apples | 3 |
| Pears | 12 |

[Give monthly](https://example.org/monthly "button")

Some text between, with `"code" -- as is` and a [plain link](https://example.org/plain).

[Volunteer *now*](https://example.org/volunteer "Button")

A [link titled button](https://example.org/inline "button") inside a sentence stays a link.
"""  # noqa: W291 (the two trailing spaces are a hard line break)


@pytest.fixture
def built(write_issue: WriteIssue) -> BuiltIssue:
    folder = write_issue(body=BODY)
    return build_issue(load_issue(folder), load_config(folder.parent.parent / "newsletter.toml"))


def test_buttons_anywhere_in_the_body_are_bulletproof(built: BuiltIssue) -> None:
    soup = BeautifulSoup(built.html, "html.parser")
    buttons = {a.get_text(strip=True): a for a in soup.find_all("a") if a.find_parent("td")}
    for text, url in [("Give monthly", "monthly"), ("Volunteer now", "volunteer")]:
        anchor = buttons[text]
        assert anchor["href"] == f"https://example.org/{url}"
        cell = anchor.find_parent("td", attrs={"bgcolor": True})  # the coloured cell itself
        assert cell is not None and cell["bgcolor"].lower() == "#c2410c"
        assert "mso-padding-alt" in cell.get("style", "")
    inline = soup.find("a", href="https://example.org/inline")
    assert inline.find_parent("p") is not None  # a link inside a sentence stays a link
    assert "Some text between" in built.text
    assert ">> Give monthly [1]" in built.text
    assert ">> Volunteer now [" in built.text


def test_tables_are_styled_and_aligned(built: BuiltIssue) -> None:
    soup = BeautifulSoup(built.html, "html.parser")
    table = soup.find("th").find_parent("table")
    assert "width:100%" in table["style"].replace(" ", "")
    th = soup.find_all("th")
    td = soup.find_all("td", string="12")[0]
    assert "border-bottom" in th[0]["style"] and "padding" in th[0]["style"]
    assert "border-bottom" in td["style"]
    assert [cell["align"] for cell in th] == ["left", "right"] and td["align"] == "right"
    assert "Fruit  | Count\n-------+------\nApples |     3\nPears  |    12" in built.text


def test_hard_line_breaks_are_kept(built: BuiltIssue) -> None:
    soup = BeautifulSoup(built.html, "html.parser")
    paragraph = next(p for p in soup.find_all("p") if "Line one" in p.get_text())
    assert len(paragraph.find_all("br")) == 2
    assert "Line one\nline two\nline three" in built.text


def test_typographic_quotes_in_html_and_text(built: BuiltIssue) -> None:
    typographic = "“quoted” and ‘single’ – it’s done…"  # noqa: RUF001
    assert typographic in BeautifulSoup(built.html, "html.parser").get_text()
    assert typographic in " ".join(built.text.split())
    # merge tags and code spans keep their straight quotes
    assert '{{ subscriber.first_name | default("friend") }}' in built.text
    assert '<code>"code" -- as is</code>' in built.html.replace("&quot;", '"')


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[Read more](javascript:alert(1))", "'javascript:' URLs are not allowed"),
        ("Our [annual report](https://example.org/annual report.pdf) is out.", "a space"),
    ],
)
def test_a_link_that_cannot_be_one_is_an_error_naming_its_line(
    write_issue: WriteIssue, runner: CliRunner, line: str, why: str
) -> None:
    folder = write_issue(body=f"Hello.\n\nTODO finish\n\n{line}\n")
    built = runner.invoke(app, ["build", str(folder)])
    assert built.exit_code == 2
    assert "issue.md:12: '[" in built.stderr
    assert why in built.stderr and "Traceback" not in built.stderr
    checked = runner.invoke(app, ["check", str(folder), "--json"])
    assert checked.exit_code == 1
    findings = json.loads(checked.stdout)["findings"]
    bad = [f for f in findings if f["code"] == "bad-link"]
    assert [(f["level"], f["where"]) for f in bad] == [("error", "issue.md:12")]
    assert why in bad[0]["message"]
    # the rest of the issue is still checked
    assert "placeholder-text" in [f["code"] for f in findings]


def test_links_that_are_fine_are_not_reported(write_issue: WriteIssue, runner: CliRunner) -> None:
    body = (
        "[Report](<https://example.org/annual report.pdf>), [mail](mailto:a@example.org), "
        '[titled](https://example.org/t "A title"), \\[not a link](really) and '
        "`[x](javascript:y)`.\n"
    )
    result = runner.invoke(app, ["check", str(write_issue(body=body)), "--json"])
    assert "bad-link" not in result.stdout


def test_a_button_is_checked_once_where_it_is_written(
    write_issue: WriteIssue, runner: CliRunner
) -> None:
    folder = write_issue(body='Hello.\n\n[Click here](http://example.org/x "button")\n')
    findings = json.loads(runner.invoke(app, ["check", str(folder), "--json"]).stdout)["findings"]
    about = [(f["code"], f["where"]) for f in findings if f["code"].endswith("link")]
    assert about == [("insecure-link", "issue.md:10")]
    vague = [(f["code"], f["where"]) for f in findings if f["code"] == "vague-link-text"]
    assert vague == [("vague-link-text", "issue.md:10")]


def test_a_table_too_wide_for_text_becomes_header_value_lines(write_issue: WriteIssue) -> None:
    body = (
        "| City | What happened | Who |\n|---|---|---|\n"
        "| Bristol | The harbour festival raised money for the lifeboats | Volunteers |\n"
    )
    folder = write_issue(body=body)
    built = build_issue(load_issue(folder), load_config(folder.parent.parent / "newsletter.toml"))
    assert (
        "City: Bristol\nWhat happened: The harbour festival raised money for the lifeboats"
        "\nWho: Volunteers"
    ) in built.text


def test_front_matter_texts_shown_get_the_same_typography(write_issue: WriteIssue) -> None:
    front = """\
    subject: "Plain \\"subject\\""
    preheader: "Something worth opening"
    date: 2026-11-24
    lead:
      title: "Paris says \\"come in\\" -- it's time"
      byline: "By Maren O'Brien"
    teasers:
      - label: Heroes
        title: "A \\"free\\" repair"
        summary: "No bill... at all"
        url: "https://example.org/free--repair"
    """
    folder = write_issue(front, "Hello.\n")
    built = build_issue(load_issue(folder), load_config(folder.parent.parent / "newsletter.toml"))
    page = BeautifulSoup(built.html, "html.parser")
    shown = ["Paris says “come in” – it’s time", "By Maren O’Brien", "A “free” repair"]  # noqa: RUF001
    for text in [*shown, "No bill… at all"]:
        assert text in page.get_text(), text
        assert text in " ".join(built.text.split()), text
    assert page.find("a", href="https://example.org/free--repair") is not None  # URLs as written
    assert built.subject == 'Plain "subject"'
