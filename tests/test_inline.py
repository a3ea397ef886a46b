"""The CSS inlining around premailer (cached rules, skipped float search) changes no output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from newsletter.compose.build import prepare, render_mjml
from newsletter.compose.compiler import compile_mjml
from newsletter.compose.inline import inline_css
from newsletter.compose.issues import load_issue
from newsletter.compose.templates import make_environment
from newsletter.config import load_config

FLOATING = """<!doctype html><html><head><style>
.right { float: right } .big { width: 100px !important }
@media (max-width: 480px) { .big { width: 100% } }
</style></head><body><img class="right big" src="a.png"><img style="FLOAT:left" src="b.png">
<img src="c.png" class="big"></body></html>"""


PLAIN = """\
import logging, sys
from pathlib import Path
import premailer
document = Path(sys.argv[1]).read_text(encoding="utf-8")
inlined = premailer.Premailer(
    document, allow_network=False, strip_important=False, keep_style_tags=False,
    remove_classes=False, disable_validation=True, cssutils_logging_level=logging.CRITICAL,
    disable_basic_attributes=["width", "height"],
).transform()
Path(sys.argv[2]).write_text(f"<!doctype html>\\n{inlined}", encoding="utf-8")
"""


def plain_premailer(document: str, tmp: Path) -> str:
    """premailer as it comes (cssutils validating, no cache of ours), in a fresh interpreter,
    with the options inline_css gives it."""
    source, target = tmp / "in.html", tmp / "out.html"
    source.write_text(document, encoding="utf-8")
    subprocess.run([sys.executable, "-c", PLAIN, source, target], check=True, timeout=120)
    return target.read_text(encoding="utf-8")


def test_the_example_inlines_exactly_as_plain_premailer(
    project: Path, example: Path, tmp_path: Path
) -> None:
    config = load_config()
    issue = load_issue(example)
    env = make_environment(config.root)
    document = compile_mjml(render_mjml(issue, config, prepare(issue, config), env))
    assert "float" not in document.lower()  # the case where premailer's float search is skipped
    expected = plain_premailer(document, tmp_path)
    assert inline_css(document) == expected
    assert inline_css(document) == expected  # the second time, from the cached rules


def test_floating_images_still_get_their_align_attribute(tmp_path: Path) -> None:
    inlined = inline_css(FLOATING)
    assert inlined == plain_premailer(FLOATING, tmp_path)
    assert 'align="right"' in inlined and 'align="left"' in inlined
    assert inline_css(FLOATING.replace("right }", "none }")).count("align=") == 1
