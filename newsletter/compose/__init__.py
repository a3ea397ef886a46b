"""Compose: an issue folder becomes a validated model, then MJML, then HTML and a text twin.

Pure functions over plain data (the one exception is reading the issue's own files and
images). `issues` reads and validates an issue folder into `models`; `markdown` and `text`
turn its body into HTML and plain text; `templates` renders the Jinja2 MJML, `compiler`
runs mjml-python, `inline` runs premailer, and `build` ties the stages together.
May import: the standard library, its third-party renderers, and `newsletter.config`,
`newsletter.errors`, `newsletter.validation`. Never `deliver`, `web`, `publish` or `cli`.
"""
