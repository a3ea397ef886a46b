"""Which tests the fast lane (`make test-fast`, `-m "not slow"`) leaves to the full `make test`.

A test is marked `slow` when it starts something outside the test process, found from its code:
the test function, every fixture it uses, and the functions and classes of their own modules that
they refer to, followed as far as they go. "Something" is a name in `STARTERS` (a real SMTP, web,
DNS or database server, a browser) or a module in `PROCESS_MODULES` (another process); a test
that runs on PostgreSQL (the `postgres_cluster` fixture, or a fixture's "postgresql" param) is
slow too. So a new test lands in the right lane by itself. Whole modules go by name
(`SLOW_MODULES` in conftest.py), and a test that is slow for another reason (it waits on the
clock, or the library starts a browser or a tool) marks itself `@pytest.mark.slow`.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

#: What starts a server or a browser, as `module.qualified_name` (a class: or a subclass).
STARTERS = frozenset(
    {
        "aiosmtpd.controller.Controller",
        "smtp_sink.running_sink",
        "smtp_sink.stalled_server",
        "web_server.serving",
        "http_site.serving_folder",
        "dns_server.running_dns",
        "browser_measure.measure",
        "postgres_server.Cluster",
        "newsletter.browser.chromium",
    }
)

#: Modules whose use means another process.
PROCESS_MODULES = frozenset({"subprocess", "multiprocessing"})

#: Whatever the code refers to that is neither a starter nor its module's own function or class.
_OTHER = object()


def _starts(value: object) -> bool:
    if isinstance(value, types.ModuleType):
        return value.__name__ in PROCESS_MODULES
    kinds = value.__mro__ if isinstance(value, type) else (value,)
    return any(
        f"{getattr(kind, '__module__', '')}.{getattr(kind, '__qualname__', '')}" in STARTERS
        for kind in kinds
    )


def _functions(value: object, module: str) -> Iterator[types.FunctionType]:
    """The plain functions behind `value` if it is code of `module` itself (a function, a
    decorated one, or a class and its methods)."""
    if getattr(value, "__module__", None) != module:
        return
    if isinstance(value, type):
        for member in vars(value).values():
            yield from _functions(getattr(member, "__func__", member), module)
        return
    if callable(value):
        function = inspect.unwrap(value)
        if isinstance(function, types.FunctionType):
            yield function


class Reader:
    """Follows code through the names it uses; remembers what it has read."""

    def __init__(self) -> None:
        self.known: dict[types.CodeType, bool] = {}

    def starts_something(self, function: Callable[..., Any]) -> bool:
        function = inspect.unwrap(getattr(function, "__func__", function))
        if not isinstance(function, types.FunctionType):
            return False
        return self._code(function.__code__, function.__globals__, function.__module__)

    def _code(self, code: types.CodeType, names: dict[str, Any], module: str) -> bool:
        if code in self.known:
            return self.known[code]
        self.known[code] = False  # a cycle (recursion) adds nothing
        found = any(
            self._code(const, names, module)
            for const in code.co_consts
            if isinstance(const, types.CodeType)
        )
        for name in code.co_names:
            if found:
                break
            value = names.get(name, _OTHER)
            found = _starts(value) or any(
                self._code(f.__code__, f.__globals__, f.__module__)
                for f in _functions(value, module)
            )
        self.known[code] = found
        return found


def _on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return "postgres_cluster" in getattr(item, "fixturenames", ()) or "postgresql" in params


def mark_slow(items: list[pytest.Item], slow_modules: frozenset[str]) -> None:
    """Mark `slow` the tests of `slow_modules` and those that start a server or a process."""
    reader = Reader()
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        fixtures = item._fixtureinfo.name2fixturedefs
        slow = (
            item.module.__name__.rsplit(".", 1)[-1] in slow_modules
            or _on_postgresql(item)
            or reader.starts_something(item.function)
            or any(
                reader.starts_something(fixtures[name][-1].func)
                for name in item.fixturenames
                if name in fixtures
            )
        )
        if slow:
            item.add_marker(pytest.mark.slow)
