"""Running every check: `issue_findings` and `check_built`, and `run_check`, the edge.

`issue_findings` is pure analysis of the issue itself (the model and its Markdown tokens),
`check_built` of the built email (the images and the final HTML). `run_check` loads and builds
the issue and turns load, validation and build problems into findings too, still reporting
what it can check when something else is wrong; `load_config_for_check` does the same for a
config missing only its postal address.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment
from markdown_it.token import Token

from newsletter.checks.content import (
    alt_findings,
    link_findings,
    markdown_items,
    raw_text_findings,
    subject_findings,
    text_findings,
)
from newsletter.checks.css import css_findings, dark_mode_findings
from newsletter.checks.email_html import (
    footer_findings,
    html_image_findings,
    image_bytes,
    size_findings,
    template_links,
    weight_findings,
)
from newsletter.checks.findings import CheckReport, Finding, Level, error_finding
from newsletter.checks.layout import check_layout
from newsletter.checks.page import Locator, Page
from newsletter.checks.spam import check_spam, ratio_findings, spam_findings
from newsletter.compose.build import (
    BuiltIssue,
    Prepared,
    link_problems,
    parse_story,
    prepare,
    render_issue,
)
from newsletter.compose.issues import issue_file, load_issue
from newsletter.compose.models import Issue
from newsletter.compose.templates import make_environment
from newsletter.config import CONFIG_NAME, Config, load_config
from newsletter.errors import (
    ConfigError,
    InputError,
    IssueError,
    Problem,
    TemplateError,
    UnreadableIssueError,
)

#: What a newsletter.toml without a postal address is checked with (and reported).
POSTAL_PLACEHOLDER = "(postal address missing)"


# --- problems from loading and building -----------------------------------------------------

_FIXES = {
    "missing-alt": 'add alt: describe the image, or write alt: "" for a purely decorative one',
    "missing-subject": "add a subject: the line the inbox shows",
    "missing-preheader": "add a preheader: the preview text inboxes show after the subject",
    "missing-postal-address": (
        "add postal_address to newsletter.toml: anti-spam laws require it in every footer"
    ),
    "bad-merge-tag": "use one of the known merge tags and close it with '}}'",
    "template-error": "fix the template or the issue's 'template' field",
}


def _problem_where(problem: Problem, error: InputError) -> str:
    path, line, name = problem.path, problem.line, problem.field
    if isinstance(error, TemplateError):
        return f"template: {path.name}:{line}" if path and line else "template"
    if path is not None and (isinstance(error, ConfigError) or path.name == CONFIG_NAME):
        return f"{path.name}: {name}" if name else path.name
    if name:
        return f"{path.name}:{line} ({name})" if path and line else f"front matter: {name}"
    if path is not None:
        return f"{path.name}:{line}" if line else path.name
    return "issue"


def problem_findings(error: InputError) -> list[Finding]:
    """One error finding per problem of a load, validation or build error."""
    findings = []
    for problem in error.problems:
        code = "template-error" if isinstance(error, TemplateError) else problem.code
        message, _, hint = problem.message.partition("; ")
        where = _problem_where(problem, error)
        fix = _FIXES.get(code) or hint or "fix it and run check again"
        findings.append(error_finding(code, message, where, fix))
    return findings


# --- all the checks -------------------------------------------------------------------------


def issue_findings(issue: Issue, tokens: Sequence[Token]) -> list[Finding]:
    """Every finding about the issue itself: its texts, alt texts and the story's links."""
    links, images = markdown_items(issue, tokens)
    broken = link_problems(issue, tokens)
    return [
        *subject_findings(issue),
        *text_findings(issue),
        *alt_findings(issue, images),
        *(problem_findings(IssueError(*broken)) if broken else []),
        *link_findings(links),
    ]


def check_built(
    issue: Issue,
    config: Config,
    prepared: Prepared,
    built: BuiltIssue,
    env: Environment | None = None,
) -> list[Finding]:
    """Every finding about the built email (reads only the templates, to say where things are)."""
    page = Page(built.html)
    locate = Locator(issue, prepared, env or make_environment(config.root))
    return [
        *size_findings(built.html_bytes),
        *html_image_findings(page, prepared, locate),
        *weight_findings(built, locate),
        *link_findings(template_links(page, prepared, locate)),
        *footer_findings(config, page),
        *css_findings(page, locate),
        *dark_mode_findings(page, locate),
        *ratio_findings(page),
    ]


# --- the edge -------------------------------------------------------------------------------


def load_config_for_check(
    path: Path | None, start: Path = Path(".")
) -> tuple[Config, list[Finding]]:
    """The config; if only its postal address is missing, a stand-in and an error finding."""
    try:
        return load_config(path, start), []
    except ConfigError as exc:
        source = exc.problems[0].path
        if source is None or any(p.field != "postal_address" for p in exc.problems):
            raise
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        data |= {"postal_address": POSTAL_PLACEHOLDER, "root": source.parent}
        return Config(**data), problem_findings(exc)


def run_check(
    issue_dir: Path,
    config: Config,
    *,
    spam: bool = False,
    render: bool = False,
    config_findings: Sequence[Finding] = (),
) -> CheckReport:
    """Load, build and check an issue; UnreadableIssueError if issue.md cannot be read at all.

    Whatever can still be checked is: an issue that does not load still has its lines checked
    for placeholders, and one that does not build still has its texts and links checked.
    """
    report = CheckReport(list(config_findings))
    built = None
    try:
        issue = load_issue(issue_dir)
    except UnreadableIssueError:
        raise
    except InputError as exc:
        report.findings += problem_findings(exc)
        source = issue_file(issue_dir)
        report.findings += raw_text_findings(source, source.read_text(encoding="utf-8"))
    else:
        report.findings += issue_findings(issue, parse_story(issue))
        try:
            env = make_environment(config.root)
            prepared = prepare(issue, config)
            built = render_issue(issue, config, env, prepared)
        except InputError as exc:
            report.findings += problem_findings(exc)
        else:
            report.findings += check_built(issue, config, prepared, built, env)
            report.html_bytes = built.html_bytes
            report.text_bytes = len(built.text.encode("utf-8"))
            report.image_bytes = image_bytes(built)
    if render and built is not None:
        report.findings += check_layout(built)
    if spam:
        report.spam = check_spam(built, config)
        report.findings += spam_findings(report.spam)
    report.findings = list(dict.fromkeys(report.findings))  # each finding once
    report.findings.sort(key=lambda finding: finding.level is not Level.ERROR)
    return report
