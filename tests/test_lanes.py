"""The fast lane (`make test-fast`) keeps an end-to-end build and leaves out what starts servers
or processes (tests/lanes.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from lanes import Reader
from smtp_sink import Sink, running_sink

REPO = Path(__file__).resolve().parent.parent
END_TO_END_BUILD = "tests/test_build_example.py::test_cli_build_writes_every_file"
SENDS_OVER_SMTP = "tests/test_send_smtp.py::test_every_header_and_personal_links[sqlite]"


def _adds_one(number: int) -> int:
    return number + 1


def _lists_a_folder() -> str:
    return subprocess.run(["ls"], capture_output=True, text=True, check=True).stdout


def _through_a_helper() -> str:
    return _lists_a_folder()


class _Relay:
    def port(self) -> Iterator[int]:
        with running_sink(Sink()) as port:
            yield port


def _with_a_relay() -> object:
    return _Relay().port


def _nested() -> Callable[[], str]:
    def inner() -> str:
        return _through_a_helper()

    return inner


#: Looked up by name, so that the tests below do not refer to what they read.
SAMPLES: dict[str, Callable[..., object]] = {
    "pure": _adds_one,
    "process": _lists_a_folder,
    "helper": _through_a_helper,
    "class": _with_a_relay,
    "nested": _nested,
}


def test_code_that_starts_nothing_is_fast() -> None:
    assert not Reader().starts_something(SAMPLES["pure"])


def test_a_process_or_server_is_found_through_helpers_classes_and_inner_functions() -> None:
    reader = Reader()
    for name in ("process", "helper", "class", "nested"):
        assert reader.starts_something(SAMPLES[name]), name


def test_the_fast_selection_keeps_the_end_to_end_build_and_leaves_out_a_send() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    selection = re.search(r'pytest -q -m "([^"]+)"', makefile)
    assert selection, "the Makefile's test-fast runs pytest -q -m '...'"
    files = sorted({test.split("::")[0] for test in (END_TO_END_BUILD, SENDS_OVER_SMTP)})
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", selection[1], *files],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    chosen = set(listed.stdout.splitlines())
    assert END_TO_END_BUILD in chosen
    assert SENDS_OVER_SMTP not in chosen
