"""The relay budget in the database: senders with their own connections keep the rate together.

Each "process" here is a `RateLimiter` over its own `RelayBudget` (its own connection), used by
three threads as a send's connections use it; both databases.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.deliver import postgres
from newsletter.deliver.relay_budget import LocalBudget, RelayBudget
from newsletter.deliver.sender import BURST, RateLimiter

RATE = 200.0
SECONDS = 2.0


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """The project's database: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield tmp_path / "newsletter.db"
        return
    yield request.getfixturevalue("postgres_url")
    postgres.close_pools()


def most_in_window(times: list[float], window: float) -> int:
    """The most of `times` that fall in any half-open interval `window` seconds long."""
    times = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - window:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.slow  # sends for SECONDS by the clock
def test_two_senders_with_their_own_connections_keep_the_rate_together(
    location: Path | str,
) -> None:
    budgets = [RelayBudget(location), RelayBudget(location)]
    limiters = [RateLimiter(RATE, "relay", budget) for budget in budgets]
    starts: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.time() + SECONDS

    errors: list[BaseException] = []

    def send(limiter: RateLimiter) -> None:
        try:
            while time.time() < deadline:
                limiter.wait(stop)
                with lock:
                    starts.append(time.time())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(lim,)) for lim in limiters for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 10)
    assert not any(thread.is_alive() for thread in threads) and not errors, errors
    for budget in budgets:
        budget.close()
    assert most_in_window(starts, 1.0) <= RATE + BURST + 1
    assert most_in_window(starts, 0.1) <= RATE / 10 + BURST + 1
    assert len(starts) >= 0.8 * RATE * SECONDS  # the budget is not wasted either


def test_a_dead_sender_leaves_no_more_than_a_moment_of_budget_behind(
    location: Path | str,
) -> None:
    dead = RateLimiter(RATE, "relay", RelayBudget(location))
    dead.wait(threading.Event())  # takes a tenth of a second's slots, then is never heard of
    survivor = RelayBudget(location)
    waited = survivor.take("relay", 1, 1 / RATE) - time.time()
    survivor.close()
    assert waited <= 0.1 + 1 / RATE


def test_a_stop_ends_the_wait_for_a_distant_slot_at_once() -> None:
    budget = LocalBudget()
    budget.take("relay", 600, 1.0)  # others hold the next ten minutes
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    RateLimiter(1.0, "relay", budget).wait(stop)
    assert time.monotonic() - started < 1.0


class _Behind:
    """A host's clock `seconds` behind the others."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time(self) -> float:
        return time.time() - self.seconds


def test_hosts_whose_clocks_differ_still_get_slots_apart(
    location: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bucket keeps the database's clock: a sender whose clock is 5 s behind is given
    slots that, on the true clock, fall between the others', not 5 s later on top of them."""
    from newsletter.deliver import relay_budget

    spacing, behind = 0.05, 5.0
    on_time, late = RelayBudget(location), RelayBudget(location)
    true_slots: list[float] = []
    try:
        for turn in range(20):
            if turn % 2:
                with monkeypatch.context() as patched:
                    patched.setattr(relay_budget, "time", _Behind(behind))
                    first = late.take("relay", 3, spacing) + behind  # its clock → the true one
            else:
                first = on_time.take("relay", 3, spacing)
            true_slots += [first + k * spacing for k in range(3)]
    finally:
        on_time.close()
        late.close()
    true_slots.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(true_slots)]
    assert min(gaps) > spacing / 2  # the round trip's jitter, not the clocks' 5 s
    assert true_slots[-1] - true_slots[0] < 60 * spacing + 1.0
