"""DMARC (RFC 7489): find and judge the policy of the From domain, and check that the DKIM
signing domain and the SPF (envelope) domain align with From.

The organisational domain comes from the Public Suffix List (`publicsuffixlist`, which ships
the list, so nothing is fetched at run time).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from newsletter.doctor.dkimkey import tag_list
from newsletter.doctor.lookup import Lookup
from newsletter.doctor.results import CheckResult, failed, passed, warned

RECORD_NAME = "DMARC record"
ALIGNMENT_NAME = "DMARC alignment"
_POLICIES = ("none", "quarantine", "reject")


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registered domain of `domain` (`news.example.co.uk` -> `example.co.uk`)."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def aligned(from_domain: str, other: str, mode: str) -> bool:
    """Whether `other` aligns with the From domain: equal (strict, 's') or same organisational
    domain (relaxed, 'r')."""
    one, two = from_domain.lower().rstrip("."), other.lower().rstrip(".")
    if mode == "s":
        return one == two
    return organisational_domain(one) == organisational_domain(two)


@dataclass(frozen=True)
class Dmarc:
    """A parsed DMARC record, found at `location`."""

    location: str
    record: str
    policy: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    reports: bool = False


def find_dmarc(from_domain: str, lookup: Lookup) -> tuple[str, list[str]]:
    """Where the DMARC record of `from_domain` lives and the records there: `_dmarc.<domain>`,
    else `_dmarc.<organisational domain>` (RFC 7489 6.6.3)."""
    location = f"_dmarc.{from_domain}"
    records = [t for t in lookup.txt(location) if _is_dmarc(t)]
    org = organisational_domain(from_domain)
    if not records and org != from_domain.lower():
        fallback = f"_dmarc.{org}"
        found = [t for t in lookup.txt(fallback) if _is_dmarc(t)]
        if found:
            return fallback, found
    return location, records


def _is_dmarc(text: str) -> bool:
    return text.replace(" ", "").lower().startswith("v=dmarc1;") or text.strip() == "v=DMARC1"


def parse_dmarc(location: str, record: str, subdomain: bool) -> Dmarc:
    """The policy in `record` (`sp=` when it applies to a subdomain); ValueError if invalid."""
    tags = tag_list(record)
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        raise ValueError(f"p= must be one of {', '.join(_POLICIES)}, not '{policy}'")
    if subdomain and tags.get("sp", "").lower() in _POLICIES:
        policy = tags["sp"].lower()
    modes = {key: tags.get(key, "r").lower() for key in ("adkim", "aspf")}
    for key, mode in modes.items():
        if mode not in ("r", "s"):
            raise ValueError(f"{key}= must be r or s, not '{mode}'")
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        raise ValueError(f"pct= must be a number, not '{tags['pct']}'") from None
    return Dmarc(location, record, policy, modes["adkim"], modes["aspf"], pct, "rua" in tags)


def record_verdict(
    from_domain: str, location: str, records: list[str]
) -> tuple[CheckResult, Dmarc | None]:
    """Judge the DMARC record(s) found for the From domain; the policy too, if valid."""
    start = f'publish a TXT record at _dmarc.{from_domain}: "v=DMARC1; p=none; rua=mailto:<you>"'
    if not records:
        finding = f"no DMARC record at _dmarc.{from_domain}: Gmail and Yahoo refuse bulk mail "
        return failed(RECORD_NAME, finding + "without one", f"{start}, then tighten p="), None
    if len(records) > 1:
        finding = f"{len(records)} DMARC records at {location}: receivers ignore them all"
        return failed(RECORD_NAME, finding, "keep exactly one"), None
    try:
        dmarc = parse_dmarc(location, records[0], location != f"_dmarc.{from_domain}")
    except ValueError as exc:
        return failed(RECORD_NAME, f"the record at {location} is invalid: {exc}", start), None
    where = f"{location} (p={dmarc.policy}{'' if dmarc.pct == 100 else f', pct={dmarc.pct}'})"
    if dmarc.policy == "none":
        result = warned(
            RECORD_NAME,
            f"{where}: monitoring only, spoofed mail is not stopped",
            "once the reports (rua=) show your mail passes, set p=quarantine, then p=reject",
        )
    elif not dmarc.reports:
        result = warned(
            RECORD_NAME,
            f"{where}: no rua= to receive aggregate reports",
            "add rua=mailto:<address> to see who sends as your domain",
        )
    else:
        result = passed(RECORD_NAME, f"{where}, aggregate reports to rua=")
    return result, dmarc


def alignment_verdict(
    from_domain: str, dkim_domain: str | None, spf_domain: str, dmarc: Dmarc | None
) -> CheckResult:
    """Whether mail can pass DMARC: DKIM d= or the envelope (SPF) domain must align with From.

    `dkim_domain` is None when mail is not signed; without a valid record the RFC's default
    relaxed alignment is assumed."""
    adkim, aspf = (dmarc.adkim, dmarc.aspf) if dmarc else ("r", "r")
    mode = {"r": "relaxed", "s": "strict"}
    spf_ok = aligned(from_domain, spf_domain, aspf)
    dkim_ok = dkim_domain is not None and aligned(from_domain, dkim_domain, adkim)
    spf_text = (
        f"envelope domain {spf_domain} {'aligns' if spf_ok else 'does not align'} ({mode[aspf]})"
    )
    if dkim_domain is None:
        dkim_text = "mail is not DKIM-signed"
    else:
        dkim_text = (
            f"DKIM d={dkim_domain} {'aligns' if dkim_ok else 'does not align'} ({mode[adkim]})"
        )
    finding = f"From {from_domain}: {dkim_text}; {spf_text}"
    if not (spf_ok or dkim_ok):
        return failed(
            ALIGNMENT_NAME,
            finding,
            f'sign with [dkim] domain = "{from_domain}" (or a subdomain of it) so DKIM aligns',
        )
    if not dkim_ok:
        return warned(
            ALIGNMENT_NAME,
            finding,
            "rely on DKIM too: SPF alignment breaks when "
            f'mail is forwarded; sign with [dkim] domain = "{from_domain}"',
        )
    return passed(ALIGNMENT_NAME, finding)
