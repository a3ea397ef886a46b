"""MJML → HTML, through mjml-python (MRML, the Rust port of MJML). The only module importing it."""

from __future__ import annotations

import mjml

from newsletter.errors import Problem, TemplateError


def compile_mjml(source: str) -> str:
    """Compile MJML to responsive HTML. No web fonts are linked: the email uses system fonts."""
    try:
        return mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise TemplateError(
            Problem(
                f"the rendered template is not valid MJML: {exc}; check the templates",
                code="template-error",
            )
        ) from None
