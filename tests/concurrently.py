"""Run one piece of work in several threads released at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(work: Callable[[], object], count: int, timeout: float = 60.0) -> list[BaseException]:
    """Run `work` in `count` threads that start together; what they raised (every thread is
    joined within `timeout` seconds, or the caller's assertion fails)."""
    start = threading.Barrier(count, timeout=10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"
    return errors
