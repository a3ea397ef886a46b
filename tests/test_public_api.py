"""The public API: what `newsletter/__init__.py` exports exists, is documented, and is cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import newsletter

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section() -> str:
    start = README.index("## Use it from Python")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_exported_name_exists_has_a_docstring_and_is_in_the_readme() -> None:
    section = _section()
    for name in newsletter.__all__:
        value = getattr(newsletter, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
        assert f"`{name}" in section or f"newsletter.{name}" in section, f"{name} not in README"


def test_the_package_is_typed() -> None:
    assert (Path(newsletter.__file__).parent / "py.typed").is_file()


def test_importing_the_package_imports_no_library() -> None:
    code = "import sys, newsletter; print(sorted(m for m in sys.modules if 'newsletter' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['newsletter']"
