"""Stand-ins import the real module on first use, and then behave as it does."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from newsletter.lazymodules import import_on_first_use

import_on_first_use("importlib.metadata", functions=("entry_points",))
import_on_first_use("urllib.request")
from importlib.metadata import entry_points  # what pydantic does at its top
import urllib.request

assert type(sys.modules["importlib.metadata"].__dict__.get("version")) is type(None)
assert "http.client" not in sys.modules
assert urllib.request.pathname2url("/a b") == "/a%20b"  # the real module, imported now
assert "http.client" in sys.modules
assert isinstance(entry_points(group="console_scripts").names, set)
from importlib import metadata
assert metadata.version("premailer")
assert metadata.PackageNotFoundError.__module__ == "importlib.metadata"
print("ok")
"""


def test_a_stand_in_imports_the_real_module_when_used() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


ON_LOAD = """
import importlib.util, sys
from newsletter.lazymodules import import_on_first_use

seen = []
import_on_first_use("cssutils", on_load=lambda module: seen.append(module.__name__))
import cssutils  # what premailer does at its top

assert importlib.util.find_spec("cssutils").origin.endswith("__init__.py")  # as if it were real
assert seen == [] and "cssutils.css" not in sys.modules
assert cssutils.parseStyle("color: red").color == "red"  # imported now, on_load called once
cssutils.parseStyle("color: blue")
assert seen == ["cssutils"]
import_on_first_use("cssutils", on_load=lambda module: seen.append("again"))  # loaded: at once
assert seen == ["cssutils", "again"]
print("ok")
"""


def test_on_load_runs_once_when_the_real_module_arrives() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ON_LOAD], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
