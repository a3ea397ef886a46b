"""People or scanners? The rules live in `newsletter/data/bot_rules.toml`, each with a reason.

A click is a bot's when it is a HEAD request, follows the hidden canary link, comes from a
known scanner's user agent, or is one of a burst: several links of one issue from one client
within seconds, as mail gateways open every link of a message on arrival. Bursts are spotted
in memory only: the client's address is never stored.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
import tomllib
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class AgentRule:
    """A user-agent substring and why it marks a bot."""

    pattern: str
    reason: str


@dataclass(frozen=True)
class Rules:
    """Every rule, as read from the data file."""

    agents: tuple[AgentRule, ...]
    burst_links: int
    burst_seconds: float
    burst_reason: str
    head_reason: str
    canary_reason: str


@cache
def rules() -> Rules:
    """The rules shipped in newsletter/data/bot_rules.toml."""
    source = importlib.resources.files("newsletter").joinpath("data", "bot_rules.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    return Rules(
        agents=tuple(AgentRule(a["pattern"].casefold(), a["reason"]) for a in data["agents"]),
        burst_links=int(data["burst"]["links"]),
        burst_seconds=float(data["burst"]["seconds"]),
        burst_reason=data["burst"]["reason"],
        head_reason=data["head"]["reason"],
        canary_reason=data["canary"]["reason"],
    )


def agent_reason(user_agent: str, rule_set: Rules) -> str | None:
    """Why this user agent is a bot's, or None (an empty one is a bot's too)."""
    if not user_agent.strip():
        return "no user agent: browsers always send one"
    agent = user_agent.casefold()
    return next((rule.reason for rule in rule_set.agents if rule.pattern in agent), None)


class BurstDetector:
    """Remembers, for a few seconds, which links each client followed (keyed by a hash)."""

    def __init__(self, rule_set: Rules) -> None:
        self.rules = rule_set
        self._seen: dict[str, deque[tuple[float, str, int]]] = defaultdict(deque)
        self._lock = threading.Lock()

    def burst(
        self, client: str, user_agent: str, issue: str, link: str, click_id: int, now: float
    ) -> list[int]:
        """Record this click; the ids of the client's recent clicks if they make a burst."""
        key = hashlib.sha256(f"{client}\0{user_agent}\0{issue}".encode()).hexdigest()
        window = self.rules.burst_seconds
        with self._lock:
            if len(self._seen) > 10_000:  # forget clients that went quiet
                for stale in [k for k, v in self._seen.items() if v[-1][0] < now - window]:
                    del self._seen[stale]
            hits = self._seen[key]
            hits.append((now, link, click_id))
            while hits and hits[0][0] < now - window:
                hits.popleft()
            if len({seen for _, seen, _ in hits}) < self.rules.burst_links:
                return []
            return [seen_id for _, _, seen_id in hits]
