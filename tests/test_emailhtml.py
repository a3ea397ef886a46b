"""The HTML cache of `newsletter build`: reused only for the very same MJML and recipe."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.compose import emailhtml, inline
from newsletter.compose.build import HTML_CACHE
from newsletter.compose.compiler import compile_mjml
from newsletter.compose.emailhtml import cache_key, email_html
from newsletter.compose.inline import ParseMemo, inline_css

MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text color="#123456">{text}</mj-text>
</mj-column></mj-section></mj-body></mjml>"""


def fresh(mjml: str) -> str:
    return inline_css(compile_mjml(mjml))


def test_the_cached_html_is_the_html(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache" / "issue.html"
    mjml = MJML.format(text="Hello")
    assert email_html(mjml, cache_file) == fresh(mjml)
    assert cache_file.read_text(encoding="utf-8").startswith(cache_key(mjml) + "\n")
    assert email_html(mjml, cache_file) == fresh(mjml)


def test_a_changed_mjml_is_compiled_again(tmp_path: Path) -> None:
    cache_file = tmp_path / "issue.html"
    email_html(MJML.format(text="Hello"), cache_file)
    changed = MJML.format(text="Goodbye")
    html = email_html(changed, cache_file)
    assert html == fresh(changed)
    assert "Goodbye" in html and "Hello" not in html
    assert cache_file.read_text(encoding="utf-8").startswith(cache_key(changed) + "\n")


def test_an_entry_is_used_only_under_its_own_key(tmp_path: Path) -> None:
    cache_file = tmp_path / "issue.html"
    mjml = MJML.format(text="Hello")
    cache_file.write_text(f"{cache_key(mjml)}\nplanted", encoding="utf-8")
    assert email_html(mjml, cache_file) == "planted"  # the same key: the entry is the answer
    cache_file.write_text(f"{'0' * 64}\nplanted", encoding="utf-8")
    assert email_html(mjml, cache_file) == fresh(mjml)
    cache_file.write_bytes(b"\xff\xfe not UTF-8")
    assert email_html(mjml, cache_file) == fresh(mjml)


def test_a_reinstalled_library_or_other_calling_code_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "fakelib.py"
    library.write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(emailhtml, "LIBRARIES", (*emailhtml.LIBRARIES, "fakelib"))
    mjml = MJML.format(text="Hello")
    emailhtml.recipe.cache_clear()
    try:
        before = cache_key(mjml)
        status = library.stat()
        os.utime(library, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
        emailhtml.recipe.cache_clear()
        assert cache_key(mjml) != before  # an upgrade or a reinstall writes the file anew
        assert b"def inline_css" in emailhtml.recipe()  # the calling code is part of it
        assert b"premailer" in emailhtml.recipe()
    finally:
        emailhtml.recipe.cache_clear()


def test_the_build_command_rebuilds_an_edited_issue(
    runner: CliRunner, example: Path, project: Path
) -> None:
    out = project / "build" / example.name
    assert runner.invoke(app, ["build", str(example)]).exit_code == 0
    assert (project / HTML_CACHE / f"{example.name}.html").is_file()
    first = (out / "index.html").read_text(encoding="utf-8")
    issue = example / "issue.md"
    text = issue.read_text(encoding="utf-8")
    title = "France opens its doors to gay men fleeing Chechnya"
    assert title in text
    issue.write_text(text.replace(title, "An edited headline"), encoding="utf-8")
    assert runner.invoke(app, ["build", str(example)]).exit_code == 0
    second = (out / "index.html").read_text(encoding="utf-8")
    assert "An edited headline" in second and "An edited headline" not in first
    assert second == first.replace(title, "An edited headline")


def test_the_parse_memo_is_kept_beside_the_entries_and_changes_nothing(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache" / "issue.html"
    memo_file = cache_file.parent / emailhtml.MEMO
    first, second = MJML.format(text="Hello"), MJML.format(text="Goodbye")
    assert email_html(first, cache_file) == fresh(first)
    stored = memo_file.read_bytes()
    assert stored.startswith(hashlib.sha256(emailhtml.recipe()).hexdigest().encode() + b"\n")
    assert email_html(second, cache_file) == fresh(second)  # the same CSS texts: all known
    assert memo_file.read_bytes() == stored  # it learnt nothing, so it was not written again


@pytest.mark.parametrize(
    "planted",
    [
        b"not a key\n{}",
        b"\xff\xfe",
        "{key}\n[1, 2]",
        '{key}\n{{"rules": {{"k": 5}}, "pairs": {{}}}}',
    ],
)
def test_a_damaged_or_foreign_memo_is_not_used(tmp_path: Path, planted: bytes | str) -> None:
    cache_file = tmp_path / "issue.html"
    memo_file = tmp_path / emailhtml.MEMO
    key = hashlib.sha256(emailhtml.recipe()).hexdigest()
    memo_file.write_bytes(planted.format(key=key).encode() if isinstance(planted, str) else planted)
    mjml = MJML.format(text="Hello")
    assert email_html(mjml, cache_file) == fresh(mjml)
    assert ParseMemo.loads(memo_file.read_bytes().decode().partition("\n")[2]).pairs  # rewritten


def test_a_memo_that_lies_is_believed_only_under_its_own_key(tmp_path: Path) -> None:
    """What the memo holds is the answer (as an entry of the HTML cache is): so it is used only
    under the recipe's key, which any change of the libraries or of our calling code changes."""
    mjml = MJML.format(text="Hello")
    memo = ParseMemo()
    inline_css(compile_mjml(mjml), memo)
    block = next(key for key, pairs in memo.pairs.items() if pairs)
    memo.pairs[block] = [("color", "#654321")]
    assert "color:#654321" in inline_css(compile_mjml(mjml), memo)
    memo_file = tmp_path / emailhtml.MEMO
    memo_file.write_text(f"{'0' * 64}\n{memo.dumps()}", encoding="utf-8")
    assert email_html(mjml, tmp_path / "issue.html") == fresh(mjml)


def test_a_full_memo_starts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inline, "MAX_BLOCKS", 2)
    monkeypatch.setattr(inline, "MAX_STYLESHEETS", 1)
    memo = ParseMemo()
    mjml = MJML.format(text="Hello")
    assert inline_css(compile_mjml(mjml), memo) == fresh(mjml)
    assert len(memo.pairs) <= 2 and len(memo.rules) <= 1
    assert ParseMemo.loads(memo.dumps()) == ParseMemo(memo.rules, memo.pairs)
