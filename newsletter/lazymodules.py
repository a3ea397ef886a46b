"""Stand-ins for modules that libraries import at their top but use only on paths we never take.

premailer imports `requests` and cssutils `urllib.request` only to fetch stylesheets, which is
never allowed here; premailer imports cssutils (about 20 ms), which a build whose CSS texts were
all parsed before never calls (`compose.inline`); pydantic imports `importlib.metadata` only to
look for plugins, which the command line tells it not to do. Each costs about 10 ms or more a
process. `import_on_first_use` puts a stand-in into sys.modules that imports the real module the
first time one of its attributes is read (a module `__getattr__`, PEP 562), so nothing changes
for any code that does use it. A library that imports a function by name at its top (`from
importlib.metadata import entry_points`) gets, for each name in `functions`, a function that
calls the real one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any


def import_on_first_use(
    name: str,
    functions: Sequence[str] = (),
    on_load: Callable[[types.ModuleType], None] | None = None,
) -> None:
    """Put a stand-in for module `name` into sys.modules that imports it on first use (unless
    the module is loaded already); `on_load` is called with the real module once it is
    imported (at once if it was loaded already)."""
    if name in sys.modules:
        if on_load is not None:
            on_load(sys.modules[name])
        return
    stand_in = types.ModuleType(name)
    # The real module's spec, so that importlib.util.find_spec(name) answers as it would.
    stand_in.__spec__ = importlib.util.find_spec(name)
    lock = threading.Lock()

    def real() -> types.ModuleType:
        with lock:  # so that no thread uses the module before on_load is done with it
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
                module = importlib.import_module(name)
                if on_load is not None:
                    on_load(module)
                return module
        return importlib.import_module(name)

    def load(attribute: str) -> Any:
        if attribute.startswith("__"):  # what the import system asks of any module
            raise AttributeError(attribute)
        return getattr(real(), attribute)

    def calling(function: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(real(), function)(*args, **kwargs)

        call.__name__ = call.__qualname__ = function
        return call

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    for function in functions:
        setattr(stand_in, function, calling(function))
    sys.modules[name] = stand_in
    package, _, child = name.rpartition(".")
    if package:  # `import urllib.request` then reads `urllib.request` from the package
        setattr(importlib.import_module(package), child, stand_in)
