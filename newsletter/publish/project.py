"""`newsletter init`: a new project folder, ready for its first issue.

newsletter.toml      every setting, commented
issues/<date>-welcome/issue.md   a first issue (a draft) from the scaffold
templates/README.md  how to override a built-in template
assets/              the logo and other shared files
.gitignore           the database, secrets, builds, outbox and site stay out of git
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.templates import default_templates, make_environment, render
from newsletter.config import CONFIG_NAME, Config, parse_config
from newsletter.errors import ConfigError, Problem
from newsletter.publish.scaffold import new_issue


@dataclass(frozen=True)
class Answers:
    """What `init` asks for."""

    name: str
    sender: str
    base_url: str
    postal_address: str
    language: str = "en"
    timezone: str = "UTC"


#: What init writes besides the first issue, and the template each comes from.
FILES = {
    CONFIG_NAME: "init/newsletter.toml.j2",
    ".gitignore": "init/gitignore.j2",
    "templates/README.md": "init/templates-README.md.j2",
}


def config_text(answers: Answers) -> str:
    """The commented newsletter.toml for these answers."""
    env = make_environment(None)
    env.filters["toml"] = lambda value: json.dumps(value, ensure_ascii=False)
    reason = f"You are receiving this because you subscribed to {answers.name}."
    return render(env, FILES[CONFIG_NAME], {**vars(answers), "reason": reason})


def _text(template: str, context: dict[str, object]) -> str:
    return render(make_environment(None), template, context)


def init_project(folder: Path, answers: Answers, today: dt.date) -> tuple[Config, Path]:
    """Create the project in `folder`; refuse if any of its files exist. Returns the config
    and the first issue's folder."""
    config_file = folder / CONFIG_NAME
    text = config_text(answers)
    config = parse_config(text, config_file)  # the answers are checked before anything is written
    taken = [name for name in (*FILES, "issues") if (folder / name).exists()]
    if taken:
        raise ConfigError(
            Problem(
                f"{folder.resolve()} already holds {', '.join(taken)}; init never overwrites "
                "a project: pick an empty or new folder",
                code="output-folder",
            )
        )
    context = {
        "database": config.database,
        "site": config.web.site,
        "defaults": default_templates(),
    }
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "assets").mkdir(exist_ok=True)
    config_file.write_text(text, encoding="utf-8")
    for name, template in FILES.items():
        if name != CONFIG_NAME:
            (folder / name).write_text(_text(template, context), encoding="utf-8")
    first = new_issue(f"Welcome to {answers.name}", folder / "issues", folder, today)
    return config, first
