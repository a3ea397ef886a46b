"""Finding and rendering Jinja2 templates: the project's `templates/` first, then the defaults."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.bccache import Bucket

from newsletter.errors import Problem, TemplateError


def default_templates() -> Path:
    """The templates shipped with the package (in a source checkout: the top-level folder)."""
    packaged = Path(__file__).parents[1] / "_templates"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "templates"


def template_dirs(project_root: Path | None) -> list[Path]:
    """Where templates are looked for, in order: the project's own, then the defaults."""
    own = [project_root / "templates"] if project_root else []
    dirs = [*own, default_templates()]
    unique = dict.fromkeys(d.resolve() for d in dirs if d.is_dir())
    return list(unique)


class _CompiledTemplates(FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates in its per-user temporary folder (keyed by each
    template's source, so an edit is seen at once); failing to write it only costs time."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled_templates() -> BytecodeCache | None:
    """The cache of compiled templates (saving ~20 ms a build), None where no safe folder is."""
    try:
        return _CompiledTemplates()
    except (OSError, RuntimeError):  # RuntimeError: Jinja2 found no safe temporary folder
        return None


def make_environment(project_root: Path | None) -> Environment:
    """A Jinja2 environment over the template folders (only the defaults without a project),
    autoescaping MJML and HTML."""
    return Environment(
        loader=ChoiceLoader([FileSystemLoader(d) for d in template_dirs(project_root)]),
        autoescape=select_autoescape(["mjml.j2", "html.j2"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_compiled_templates(),
    )


def render(env: Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render template `name`; a missing or broken template becomes a located TemplateError."""
    try:
        return env.get_template(name).render(context)
    except TemplateNotFound as exc:
        loader = env.loader
        searched = ", ".join(
            str(p) for lo in getattr(loader, "loaders", []) for p in getattr(lo, "searchpath", [])
        )
        raise TemplateError(
            Problem(
                f"template '{exc.name}' not found (looked in {searched}); "
                "check the 'template' field or add the file",
                code="template-error",
            )
        ) from None
    except TemplateSyntaxError as exc:
        where = Path(exc.filename) if exc.filename else None
        raise TemplateError(
            Problem(
                f"template syntax error: {exc.message}", where, exc.lineno, code="template-error"
            )
        ) from None
    except UndefinedError as exc:
        raise TemplateError(
            Problem(
                f"template '{name}' uses something undefined: {exc.message}", code="template-error"
            )
        ) from None
