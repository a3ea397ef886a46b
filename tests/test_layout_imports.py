"""The package stays layered: each subpackage imports only what its docstring allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"

# subpackage -> the newsletter subpackages it must never import
FORBIDDEN = {
    "compose": {"deliver", "web", "cli", "publish", "checks", "inbound", "doctor"},
    "deliver": {"web", "cli", "publish"},
    "publish": {"deliver", "web", "cli"},
    "web": {"cli"},
    "checks": {"web", "cli"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("sub", sorted(FORBIDDEN))
def test_subpackage_imports_respect_the_layers(sub: str) -> None:
    offenders = []
    for path in (PACKAGE / sub).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "newsletter" and len(parts) > 1 and parts[1] in FORBIDDEN[sub]:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offenders


def test_only_the_cli_imports_typer() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if path.relative_to(PACKAGE).parts[0] != "cli"
        and any(name.split(".")[0] == "typer" for name in _imports(path))
    ]
    assert not offenders


def test_every_subpackage_says_what_it_does() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"{init} needs a docstring saying what it may import"
