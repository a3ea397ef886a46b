"""How much of the list goes to Gmail, Outlook.com and Yahoo, whose bulk-sender rules apply
from 5,000 messages a day to their users.

Only the providers' own consumer domains are recognised; company domains hosted by Google or
Microsoft cannot be told apart by their names and are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.doctor.dmarc import organisational_domain
from newsletter.doctor.results import CheckResult, passed, warned

BULK_THRESHOLD = 5_000
NAME = "bulk-sender volume"
PROVIDERS = ("Gmail", "Outlook.com", "Yahoo")
_EXACT = {
    "gmail.com": "Gmail",
    "googlemail.com": "Gmail",
    "msn.com": "Outlook.com",
    "passport.com": "Outlook.com",
    "aol.com": "Yahoo",
    "ymail.com": "Yahoo",
    "rocketmail.com": "Yahoo",
}
#: Names used under many country suffixes (hotmail.co.uk, live.fr, yahoo.co.jp, ...).
_BRANDS = {
    "hotmail": "Outlook.com",
    "outlook": "Outlook.com",
    "live": "Outlook.com",
    "windowslive": "Outlook.com",
    "yahoo": "Yahoo",
}


def provider(domain: str) -> str | None:
    """Gmail, Outlook.com, Yahoo, or None for a domain of anybody else."""
    domain = domain.lower().rstrip(".")
    if domain in _EXACT:
        return _EXACT[domain]
    if organisational_domain(domain) != domain:
        return None
    return _BRANDS.get(domain.partition(".")[0])


def provider_counts(domains: Mapping[str, int]) -> dict[str, int]:
    """Active subscribers per provider, from the count per address domain."""
    counts = dict.fromkeys(PROVIDERS, 0)
    for domain, count in domains.items():
        name = provider(domain)
        if name:
            counts[name] += count
    return counts


def volume_verdict(counts: Mapping[str, int], total: int) -> CheckResult:
    """Warn when one issue sends 5,000 or more copies to one of the providers in a day."""
    listed = ", ".join(f"{name} {counts[name]:,}" for name in PROVIDERS)
    over = [name for name in PROVIDERS if counts[name] >= BULK_THRESHOLD]
    if not over:
        return passed(
            NAME,
            f"{total:,} active subscribers ({listed}): under the "
            f"{BULK_THRESHOLD:,}-a-day bulk-sender threshold of each provider",
        )
    return warned(
        NAME,
        f"{total:,} active subscribers ({listed}): every issue makes you a bulk sender to "
        f"{', '.join(over)}",
        "bulk senders must pass SPF and DKIM with DMARC (p= at least none) aligned with From, "
        "offer one-click unsubscribe (List-Unsubscribe-Post, honoured within 2 days) and keep "
        "spam complaints under 0.3 % (aim for 0.1 %; see Google Postmaster Tools)",
    )
