"""`newsletter check`: every error and warning triggered by a small issue and not by its twin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from newsletter.browser import find_chromium
from newsletter.checks import (
    CheckReport,
    Finding,
    Level,
    load_config_for_check,
    parse_spam_report,
    run_check,
)
from newsletter.cli.app import app
from newsletter.compose.build import build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import default_templates
from newsletter.config import load_config

WriteIssue = Callable[..., Path]
Template = Callable[[str, str], None]


def front(
    subject: str = "A small issue",
    preheader: str | None = "Something worth opening",
    lead: str = "",
    rest: str = "",
) -> str:
    """Front matter of a small issue; `lead` and `rest` are extra YAML lines."""
    lines = [f"subject: {json.dumps(subject)}"]
    if preheader is not None:
        lines.append(f"preheader: {json.dumps(preheader)}")
    lines += ["date: 2026-11-24", "lead:", '  title: "A small headline"']
    return "\n".join(lines) + "\n" + lead + rest


def teaser(url: str) -> str:
    """A `teasers:` list of one card linking to `url`."""
    return f"teasers:\n  - {{label: L, title: T, summary: S, url: {json.dumps(url)}}}\n"


def png(folder: Path, name: str, pad: int = 0) -> None:
    """A small PNG (or animated GIF, sent as it is) in folder/images, padded with trailing bytes
    to weigh what a test needs."""
    path = folder / "images" / name
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("teal", "navy")]
    frames[0].save(path, save_all=name.endswith(".gif"), append_images=frames[1:])
    with path.open("ab") as file:
        file.write(b"\0" * pad)


def check(folder: Path) -> CheckReport:
    config, found = load_config_for_check(None)
    return run_check(folder, config, config_findings=found)


def with_code(report: CheckReport, code: str) -> list[Finding]:
    return [finding for finding in report.findings if finding.code == code]


@dataclass
class Case:
    """An issue that triggers `code` and a twin that does not (images: name → padding)."""

    code: str
    bad: tuple[str, str]
    good: tuple[str, str]
    bad_images: dict[str, int] = field(default_factory=dict)
    good_images: dict[str, int] = field(default_factory=dict)
    where: str | None = None


MB = 1024 * 1024
HELLO = "Hello.\n"
IMAGE = "  image:\n    src: images/a.png\n"
SIX_IMAGES = "".join(f"![Chart {n}](images/{n}.gif)\n\n" for n in range(6))
LONG_TEXT = "Rents rose again this year, and here is what it means for tenants. " * 3

CASES = [
    # --- errors
    Case(
        "missing-alt",
        (front(lead=IMAGE), HELLO),
        (front(lead=IMAGE + '    alt: ""\n'), HELLO),
        {"a.png": 0},
        {"a.png": 0},
        "issue.md:7 (lead.image.alt)",  # as build says it
    ),
    Case(
        "missing-alt",
        (front(), "Intro.\n\n![](images/a.png)\n"),
        (front(), 'Intro.\n\n![](images/a.png "decorative")\n'),
        {"a.png": 0},
        {"a.png": 0},
        "issue.md:10",
    ),
    Case(
        "missing-alt",
        (front(), 'A chart: <img src="https://example.org/c.png">\n'),
        (front(), 'A chart: <img src="https://example.org/c.png" alt="Rents since 2010">\n'),
        where="issue.md:8",
    ),
    Case(
        "missing-subject",
        (front(subject=""), HELLO),
        (front(), HELLO),
        where="issue.md:2 (subject)",
    ),
    Case(
        "missing-preheader",
        (front(preheader=None), HELLO),
        (front(), HELLO),
        where="issue.md:2 (preheader)",
    ),
    Case(
        "bad-link",
        (front(), "See [the report]().\n"),
        (front(), "See [the report](https://example.org/r).\n"),
        where="issue.md:8",
    ),
    Case(
        "bad-link",
        (front(), "Back to [the top](#).\n"),
        (front(), "Write to [us](mailto:editors@example.org).\n"),
    ),
    Case(
        "bad-link",
        (front(), "Back to [the top](#top).\n"),
        (front(), "[Unsubscribe here]({{ unsubscribe_url }}).\n"),
    ),
    Case(
        "bad-link",
        (front(), 'One\n\n<a href="javascript:alert(1)">Win</a>\n'),
        (front(), 'One\n\n<a href="https://example.org/win">Win</a>\n'),
        where="issue.md:10",
    ),
    Case(
        "bad-link",
        (front(), "Visit [our site](www.example.org).\n"),
        (front(), "Visit [our site](https://www.example.org).\n"),
    ),
    Case(
        "bad-link",
        (front(rest=teaser("javascript:x")), HELLO),
        (front(rest=teaser("https://example.org/t")), HELLO),
        where="issue.md:8 (teasers.0.url)",
    ),
    Case(
        "bad-merge-tag",
        (front(), "Hi {{ subscriber.nickname }}.\n"),
        (front(), "Hi {{ subscriber.first_name }}.\n"),
        where="issue.md:8",
    ),
    Case(
        "bad-merge-tag",
        (front(), "One.\n\nHi {{ subscriber.first_name.\n"),
        (front(), HELLO),
        where="issue.md:10",
    ),
    Case(
        "missing-image",
        (front(), "![A chart](images/gone.png)\n"),
        (front(), "![A chart](images/a.png)\n"),
        good_images={"a.png": 0},
        where="issue.md:8",
    ),
    Case(
        "missing-image",
        (front(lead=IMAGE + '    alt: "A chart"\n'), HELLO),
        (front(lead=IMAGE + '    alt: "A chart"\n'), HELLO),
        good_images={"a.png": 0},
        where="front matter: lead.image.src",
    ),
    Case(
        "placeholder-text",
        (front(), "Rents rose by TK per cent.\n"),
        (front(), "The TKO came in round two.\n"),
        where="issue.md:8",
    ),
    Case(
        "placeholder-text",
        (front(lead='  byline: "By TODO"\n'), HELLO),
        (front(lead='  byline: "By the to-do team"\n'), HELLO),
        where="front matter: lead.byline",
    ),
    Case(
        "placeholder-text",
        (front(preheader="Lorem  ipsum dolor"), HELLO),
        (front(preheader="Lorem, our cat, is back"), HELLO),
        where="front matter: preheader",
    ),
    # --- warnings
    Case(
        "long-subject",
        (front(subject="Rents " * 13 + "rise!"), HELLO),
        (front(subject=("Rents " * 13)[:78]), HELLO),
        where="front matter: subject",
    ),
    Case(
        "subject-all-caps",
        (front(subject="RENTS RISE AGAIN"), HELLO),
        (front(subject="Rents rise again"), HELLO),
    ),
    Case(
        "long-preheader", (front(preheader="p" * 141), HELLO), (front(preheader="p" * 140), HELLO)
    ),
    Case(
        "preheader-repeats-subject",
        (front(subject="Rents rise", preheader="Rents rise again in the city"), HELLO),
        (front(subject="Rents rise", preheader="What the figures mean for tenants"), HELLO),
        where="front matter: preheader",
    ),
    Case(
        "insecure-link",
        (front(), "Read [the report](http://example.org/r).\n"),
        (front(), "Read [the report](https://example.org/r).\n"),
        where="issue.md:8",
    ),
    Case(
        "insecure-link",
        (front(rest=teaser("http://example.org/t")), HELLO),
        (front(rest=teaser("https://example.org/t")), HELLO),
        where="front matter: teasers.0.url",
    ),
    Case(
        "large-image",
        (front(), "![A chart](images/a.gif)\n"),
        (front(), "![A chart](images/a.gif)\n"),
        {"a.gif": MB + 1},
        {"a.gif": 0},
        "issue.md:8",
    ),
    Case(
        "heavy-images",
        (front(), SIX_IMAGES + LONG_TEXT * 3),
        (front(), SIX_IMAGES + LONG_TEXT * 3),
        {f"{n}.gif": 900_000 for n in range(6)},
        {f"{n}.gif": 0 for n in range(6)},
    ),
    Case(
        "image-no-width",
        (front(), "![A chart](https://example.org/chart.png)\n"),
        (front(), "![A chart](images/a.png)\n"),
        good_images={"a.png": 0},
        where="issue.md:8",
    ),
    Case(
        "css-unsupported",
        (front(lead='  cta: {text: "Read it", url: "https://example.org/s"}\n'), HELLO),
        (front(), HELLO),
        where="template: lead.mjml.j2:11",
    ),
    Case(
        "alt-filename",
        (front(), "![IMG_2041.jpg](images/a.png)\n"),
        (front(), "![A chart of rents](images/a.png)\n"),
        {"a.png": 0},
        {"a.png": 0},
        "issue.md:8",
    ),
    Case(
        "alt-filename",
        (front(lead=IMAGE + '    alt: "DSC01234"\n'), HELLO),
        (front(lead=IMAGE + '    alt: "A crowd in Paris"\n'), HELLO),
        {"a.png": 0},
        {"a.png": 0},
        "front matter: lead.image.alt",
    ),
    Case(
        "vague-link-text",
        (front(), "For more, [click here](https://example.org/r).\n"),
        (front(), "Read [the full report on rents](https://example.org/r).\n"),
        where="issue.md:8",
    ),
    Case(
        "spam-caps",
        (front(subject="Our FREE MONEY guide"), HELLO),
        (front(subject="NASA and the UK agree"), HELLO),
        where="front matter: subject",
    ),
    Case(
        "spam-exclamation",
        (front(), "One.\n\nWow!!\n"),
        (front(), "One.\n\nWow!\n"),
        where="issue.md:10",
    ),
    Case(
        "spam-exclamation",
        (front(subject="Big news!!!"), HELLO),
        (front(subject="Big news!"), HELLO),
        where="front matter: subject",
    ),
    Case(
        "low-text-ratio",
        (front(), SIX_IMAGES),
        (front(), "![Chart 0](images/0.gif)\n\n" + LONG_TEXT),
        {f"{n}.gif": 0 for n in range(6)},
        {"0.gif": 0},
        "email HTML",
    ),
]

ERRORS = {
    "missing-alt", "missing-subject", "missing-preheader", "bad-link", "bad-merge-tag",
    "missing-image", "placeholder-text", "gmail-clip", "missing-unsubscribe",
    "missing-postal-address",
}  # fmt: skip


def _run(write_issue: WriteIssue, issue: tuple[str, str], images: dict[str, int]) -> CheckReport:
    folder = write_issue(*issue)
    for name, pad in images.items():
        png(folder, name, pad)
    return check(folder)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.code}-{i}" for i, c in enumerate(CASES)])
def test_each_finding_triggers_and_its_twin_does_not(write_issue: WriteIssue, case: Case) -> None:
    found = with_code(_run(write_issue, case.bad, case.bad_images), case.code)
    assert found, f"{case.code} not reported"
    level = Level.ERROR if case.code in ERRORS else Level.WARNING
    assert {finding.level for finding in found} == {level}
    assert all(finding.message and finding.fix and finding.where for finding in found)
    if case.where:
        assert case.where in [finding.where for finding in found]
    assert not with_code(_run(write_issue, case.good, case.good_images), case.code)


def test_a_small_clean_issue_has_no_findings(write_issue: WriteIssue) -> None:
    report = check(write_issue())
    assert report.findings == []
    assert report.html_bytes and report.text_bytes and report.image_bytes > 0


def test_the_example_issue_has_no_errors(example: Path) -> None:
    report = check(example)
    assert report.counts["errors"] == 0, report.findings
    # One genuine warning: the button's rounded corners are square in Outlook for Windows.
    assert [(f.code, f.where) for f in report.findings] == [
        ("css-unsupported", "template: lead.mjml.j2:11")
    ]


def _body_of(write_issue: WriteIssue, target_bytes: int) -> Path:
    """An issue whose HTML is about `target_bytes` long (one long paragraph)."""
    base = check(write_issue(front(), "x\n")).html_bytes or 0
    return write_issue(front(), "word " * ((target_bytes - base) // 5) + "\n")


def test_html_over_102_kb_is_an_error(write_issue: WriteIssue) -> None:
    report = check(_body_of(write_issue, 110 * 1024))
    assert [f.level for f in with_code(report, "gmail-clip")] == [Level.ERROR]
    assert not with_code(check(_body_of(write_issue, 100 * 1024)), "gmail-clip")


def test_html_over_90_kb_is_a_warning(write_issue: WriteIssue) -> None:
    report = check(_body_of(write_issue, 96 * 1024))
    assert 90 * 1024 < (report.html_bytes or 0) < 102 * 1024
    assert [f.level for f in with_code(report, "near-gmail-clip")] == [Level.WARNING]
    assert not with_code(check(_body_of(write_issue, 85 * 1024)), "near-gmail-clip")


def test_decorative_title_is_not_a_caption(write_issue: WriteIssue, project: Path) -> None:
    folder = write_issue(front(), 'Intro.\n\n![](images/a.png "decorative")\n')
    png(folder, "a.png")
    built = build_issue(load_issue(folder), load_config(project / "newsletter.toml"))
    assert "decorative" not in built.html and "decorative" not in built.text
    assert 'alt=""' in built.html


# --- templates a project overrides


@pytest.fixture
def template(project: Path) -> Template:
    """Write a template of the project's own (templates/NAME), shadowing the default."""

    def write(name: str, text: str) -> None:
        (project / "templates").mkdir(exist_ok=True)
        (project / "templates" / name).write_text(text, encoding="utf-8")

    return write


FOOTER = (REPO / "templates" / "footer.mjml.j2").read_text(encoding="utf-8")
UNSUBSCRIBE_LINK = "<a href=\"{{ merge('unsubscribe_url') }}\">Unsubscribe</a> &middot; "


def _custom(content: str, head: str = "") -> str:
    """An issue template that puts `content` in one card section."""
    return (
        '{% extends "base.mjml.j2" %}\n'
        f"{{% block head %}}\n{head}\n{{% endblock %}}\n"
        "{% block content %}\n"
        '<mj-section css-class="nl-card" background-color="#ffffff"><mj-column>\n'
        f"{content}\n"
        "</mj-column></mj-section>\n"
        "{% endblock %}\n"
    )


CUSTOM = front(rest="template: custom.mjml.j2\n")


def test_footer_without_unsubscribe_link(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue()
    assert not with_code(check(folder), "missing-unsubscribe")
    template("footer.mjml.j2", FOOTER.replace(UNSUBSCRIBE_LINK, ""))
    [finding] = with_code(check(folder), "missing-unsubscribe")
    assert (finding.level, finding.where) == (Level.ERROR, "template: footer.mjml.j2")


def test_footer_without_postal_address(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue()
    assert not with_code(check(folder), "missing-postal-address")
    template("footer.mjml.j2", FOOTER.replace("{{ config.postal_address", "{{ config.name"))
    [finding] = with_code(check(folder), "missing-postal-address")
    assert (finding.level, finding.where) == (Level.ERROR, "template: footer.mjml.j2")


def test_config_without_postal_address(
    runner: CliRunner, write_issue: WriteIssue, project: Path
) -> None:
    config = project / "newsletter.toml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(ln for ln in lines if not ln.startswith("postal_address")))
    result = runner.invoke(app, ["check", str(write_issue()), "--json"])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)["findings"]
    assert {
        "level": "error",
        "code": "missing-postal-address",
        "message": "required field is missing",
        "where": "newsletter.toml: postal_address",
        "fix": "add postal_address to newsletter.toml: anti-spam laws require it in every footer",
    } in findings


def test_template_image_without_alt(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue(CUSTOM)
    template("custom.mjml.j2", _custom('<mj-image src="https://example.org/a.png" alt="A map" />'))
    assert not with_code(check(folder), "missing-alt")
    template("custom.mjml.j2", _custom('<mj-image src="https://example.org/a.png" />'))
    [finding] = with_code(check(folder), "missing-alt")
    assert finding.where == "template: custom.mjml.j2:7"


def test_template_links(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue(CUSTOM)
    named = '<a href="https://example.org/r" aria-label="Read more about rents">Read more</a>'
    template("custom.mjml.j2", _custom(f"<mj-text>{named}</mj-text>"))
    assert not {"bad-link", "vague-link-text"} & {f.code for f in check(folder).findings}
    template("custom.mjml.j2", _custom('<mj-text><a href="#">Read more</a></mj-text>'))
    report = check(folder)
    assert [f.where for f in with_code(report, "bad-link")] == ["template: custom.mjml.j2:7"]
    assert [f.message for f in with_code(report, "vague-link-text")] == [
        "the link text says 'Read more' on its own; screen-reader users hear links out of context"
    ]


def test_css_that_clients_drop(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue(CUSTOM)
    template("custom.mjml.j2", _custom('<mj-text css-class="nl-text"><p>Plain.</p></mj-text>'))
    assert not with_code(check(folder), "css-unsupported")
    flex = (
        '<mj-text css-class="nl-text"><div style="display:flex;position:absolute">A</div></mj-text>'
    )
    template(
        "custom.mjml.j2", _custom(flex, "<mj-style>\n  .nl-x:hover { color: red; }\n</mj-style>")
    )
    messages = [f.message for f in with_code(check(folder), "css-unsupported")]
    assert len(messages) == 3
    assert messages[0].startswith("display: flex (1 place) is dropped by Outlook for Windows")
    assert messages[1].startswith("position (1 place) is dropped by Gmail, Outlook for Windows")
    assert "outside @media (first: .nl-x:hover)" in messages[2] and "non-Google" in messages[2]


def test_dark_text_without_dark_mode_rule(write_issue: WriteIssue, template: Template) -> None:
    folder = write_issue(CUSTOM)
    template("custom.mjml.j2", _custom('<mj-text css-class="nl-text" color="#333333">A</mj-text>'))
    assert not with_code(check(folder), "dark-mode-color")
    template("custom.mjml.j2", _custom('<mj-text color="#333333">Hard to read</mj-text>'))
    [finding] = with_code(check(folder), "dark-mode-color")
    assert finding.where == "template: custom.mjml.j2:7"
    assert finding.message.startswith('text in #333333 ("Hard to read", 1 in all)')


def test_light_background_kept_in_dark_mode_is_fine(
    write_issue: WriteIssue, template: Template
) -> None:
    folder = write_issue(CUSTOM)
    kept = '<mj-section background-color="#f3efe6"><mj-column><mj-text color="#333333">A'
    template("custom.mjml.j2", _custom("</mj-column></mj-section>" + kept + "</mj-text>"))
    assert not with_code(check(folder), "dark-mode-color")


# --- the command: exit codes, output, JSON


def test_exit_0_with_a_clean_issue(runner: CliRunner, write_issue: WriteIssue) -> None:
    result = runner.invoke(app, ["check", str(write_issue())])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("0 errors, 0 warnings (HTML ")


def test_warnings_alone_exit_0(runner: CliRunner, write_issue: WriteIssue) -> None:
    result = runner.invoke(app, ["check", str(write_issue(front(subject="RENTS RISE")))])
    assert result.exit_code == 0, result.output
    first, summary = result.stdout.strip().splitlines()
    assert first.startswith("warning front matter: subject  subject-all-caps  the subject is")
    assert " — write it in sentence case" in first
    assert summary.startswith("0 errors, 1 warning (HTML ")


def test_errors_exit_1(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(front(), "Intro.\n\n![](images/a.png)\n")
    png(folder, "a.png")
    result = runner.invoke(app, ["check", str(folder)])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "error   issue.md:10  missing-alt  the image 'images/a.png' has no alt text — describe it"
    )
    assert "1 error, 0 warnings" in result.stdout


@pytest.mark.parametrize(
    "text",
    [b"no front matter\n", b"---\nsubject: x\n", b'---\nsubject: "x\n---\n', b"---\n\xff\n---\n"],
    ids=["no-front-matter", "unclosed", "yaml-syntax", "not-utf8"],
)
def test_unreadable_issue_exits_2(runner: CliRunner, project: Path, text: bytes) -> None:
    folder = project / "issues" / "broken"
    folder.mkdir(parents=True)
    (folder / "issue.md").write_bytes(text)
    result = runner.invoke(app, ["check", str(folder), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    error = json.loads(result.stdout)["error"]  # with --json, the error as JSON, with its code
    assert error["exit_code"] == 2
    assert error["code"] == ("not-utf8" if b"\xff" in text else "yaml-syntax")
    assert [p["code"] for p in error["problems"]] == [error["code"]]


def test_missing_issue_and_broken_config_exit_2(runner: CliRunner, project: Path) -> None:
    assert runner.invoke(app, ["check", str(project / "issues" / "nothing")]).exit_code == 2
    (project / "newsletter.toml").write_text('name = "x\n')
    result = runner.invoke(app, ["check", str(project / "issues" / "nothing")])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr


def test_json_shape(runner: CliRunner, write_issue: WriteIssue) -> None:
    folder = write_issue(front(subject="RENTS RISE"), "Up TK%. Read [here](http://example.org).\n")
    result = runner.invoke(app, ["check", str(folder), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == {"issue", "ok", "counts", "sizes", "findings", "spam"}
    assert data["ok"] is False and data["spam"] is None
    assert data["counts"] == {"errors": 1, "warnings": 3}  # TK; capitals, http, "here"
    assert set(data["sizes"]) == {"html_bytes", "text_bytes", "image_bytes"}
    assert all(isinstance(size, int) for size in data["sizes"].values())
    assert [f["level"] for f in data["findings"]] == ["error", "warning", "warning", "warning"]
    assert all(set(f) == {"level", "code", "message", "where", "fix"} for f in data["findings"])


def test_validation_problems_all_become_findings(write_issue: WriteIssue) -> None:
    report = check(write_issue('subject: ""\ndate: 2026-11-24\nlead:\n  title: T\n  bylin: x\n'))
    assert {(f.code, f.where) for f in report.findings} == {
        ("missing-subject", "issue.md:2 (subject)"),
        ("missing-preheader", "issue.md:2 (preheader)"),
        ("unknown-field", "issue.md:6 (lead.bylin)"),
    }
    assert report.html_bytes is None


# --- SpamAssassin

FAKE_REPORT = """\
Content analysis details:   (7.5 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
 3.1 SUBJ_ALL_CAPS          Subject is all capitals
 4.4 HTML_IMAGE_ONLY_08     BODY: HTML: images with 400-800 bytes of words
 0.0 HTML_MESSAGE           BODY: HTML included in
                            message

"""


def test_parse_spam_report() -> None:
    report = parse_spam_report("X-Spam-Status: Yes\r\n\r\n" + FAKE_REPORT.replace("\n", "\r\n"))
    assert (report.available, report.score, report.threshold) == (True, 7.5, 5.0)
    assert [(r.name, r.points) for r in report.rules] == [
        ("SUBJ_ALL_CAPS", 3.1),
        ("HTML_IMAGE_ONLY_08", 4.4),
        ("HTML_MESSAGE", 0.0),
    ]
    assert report.rules[2].description == "BODY: HTML included in message"


def _fake_spamassassin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: str) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "spamassassin"
    script.write_text(f"#!/bin/sh\n/bin/cat > /dev/null\n/bin/cat <<'EOF'\n{report}EOF\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_spam_score_over_threshold_is_a_warning(
    runner: CliRunner, write_issue: WriteIssue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_issue()
    _fake_spamassassin(tmp_path, monkeypatch, FAKE_REPORT)
    result = runner.invoke(app, ["check", str(folder), "--spam", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["spam"]["score"] == 7.5 and data["spam"]["threshold"] == 5.0
    [finding] = data["findings"]
    assert finding["code"] == "spam-score" and finding["level"] == "warning"
    assert "HTML_IMAGE_ONLY_08 4.4, SUBJ_ALL_CAPS 3.1" in finding["message"]


def test_spam_score_under_threshold_is_no_warning(
    runner: CliRunner, write_issue: WriteIssue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_spamassassin(tmp_path, monkeypatch, FAKE_REPORT.replace("(7.5 points", "(1.2 points"))
    result = runner.invoke(app, ["check", str(write_issue()), "--spam"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("SpamAssassin: 1.2 points (5.0 required); SUBJ_ALL_CAPS 3.1")
    assert lines[1].startswith("0 errors, 0 warnings")


def test_spam_without_spamassassin(
    runner: CliRunner, write_issue: WriteIssue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    folder = write_issue()
    result = runner.invoke(app, ["check", str(folder), "--spam"])
    assert result.exit_code == 0
    note = "Note: SpamAssassin is not installed; install it with: apt-get install spamassassin"
    assert note in result.stdout.splitlines()
    data = json.loads(runner.invoke(app, ["check", str(folder), "--spam", "--json"]).stdout)
    assert (
        data["spam"]["available"] is False
        and "apt-get install spamassassin" in data["spam"]["note"]
    )


@pytest.mark.slow  # runs SpamAssassin
@pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="SpamAssassin is not installed (apt-get install spamassassin)",
)
def test_spamassassin_scores_the_example(example: Path) -> None:
    config, _ = load_config_for_check(None)
    report = run_check(example, config, spam=True)
    spam = report.spam
    assert spam is not None and spam.available and spam.note is None
    assert spam.score is not None and spam.threshold is not None and spam.score < spam.threshold
    assert "HTML_MESSAGE" in [rule.name for rule in spam.rules]
    assert "HTML_FONT_LOW_CONTRAST" not in [rule.name for rule in spam.rules]  # the preheader
    assert [rule.name for rule in spam.rules if rule.points > 0] == []
    assert report.counts["errors"] == 0


@pytest.mark.slow  # the check starts Chromium
@pytest.mark.skipif(
    find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_render_finds_an_email_too_wide_for_phones(
    runner: CliRunner, example: Path, project: Path
) -> None:
    fine = runner.invoke(app, ["check", str(example), "--render", "--json"])
    assert fine.exit_code == 0, fine.stderr
    assert "layout-overflow" not in fine.stdout
    own = project / "templates"
    own.mkdir()
    footer = (default_templates() / "footer.mjml.j2").read_text()
    wide = (
        '<mj-raw><table role="presentation" style="width:900px"><tr><td>x</td></tr></table>'
        "</mj-raw>"
    )
    (own / "footer.mjml.j2").write_text(footer.replace("</mj-section>", "</mj-section>" + wide, 1))
    result = runner.invoke(app, ["check", str(example), "--render", "--json"])
    assert result.exit_code == 1
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "layout-overflow"]
    assert [f["message"].split(" the email")[0] for f in found] == [
        "at 375 px wide",
        "at 650 px wide",
    ]
