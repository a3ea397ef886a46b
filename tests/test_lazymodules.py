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
