"""SPF (RFC 7208): parse a record and work out what it says of one sending address.

`check_host` follows the RFC's evaluation: mechanisms in order, the first match decides, then
`redirect=`; `include`, `a`, `mx`, `ptr`, `exists` and `redirect` each cost one of the ten DNS
lookups, and more than two lookups that find nothing are a permanent error. Macros (`%{i}`)
are not expanded: a record that needs them is reported as one this check cannot evaluate.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from newsletter.doctor.lookup import Lookup, LookupFailed
from newsletter.doctor.results import CheckResult, failed, passed, warned

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
MX_LIMIT = 10
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_COSTLY = {"include", "a", "mx", "ptr", "exists"}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfError(Exception):
    """The record is broken (permerror) or cannot be evaluated here."""


@dataclass(frozen=True)
class Term:
    """One mechanism or modifier, e.g. `~all`, `include:_spf.example.net`, `ip4:1.2.3.0/24`."""

    text: str
    qualifier: str
    name: str
    value: str
    modifier: bool = False


@dataclass(frozen=True)
class SpfResult:
    """The outcome for one address: pass, fail, softfail, neutral, none, permerror, temperror
    or unknown (macros); `reason` names the deciding term or the error."""

    result: str
    reason: str
    lookups: int


@dataclass
class _Budget:
    """The DNS lookups one evaluation has spent, and how many found nothing."""

    lookups: int = 0
    voids: int = 0

    def spend(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise SpfError(f"more than {LOOKUP_LIMIT} DNS lookups (at {term})")

    def answered(self, answers: list[str]) -> list[str]:
        if not answers:
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise SpfError(f"more than {VOID_LIMIT} lookups found nothing")
        return answers


def spf_records(texts: list[str]) -> list[str]:
    """The TXT records that are SPF records (`v=spf1`, alone or followed by a space)."""
    return [
        text for text in texts if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
    ]


def parse_record(record: str) -> list[Term]:
    """The terms of a `v=spf1 ...` record; SpfError for anything the RFC's grammar refuses."""
    terms = []
    for text in record.split()[1:]:
        qualifier = text[0] if text[0] in QUALIFIERS else "+"
        body = text[1:] if text[0] in QUALIFIERS else text
        name, sep, value = _split_term(body)
        if sep == "=":
            if text[0] in QUALIFIERS or not name.replace("-", "").replace("_", "").isalnum():
                raise SpfError(f"'{text}' is not a valid modifier")
            terms.append(Term(text, "", name.lower(), value, modifier=True))
            continue
        name = name.lower()
        if name not in _MECHANISMS:
            raise SpfError(f"unknown mechanism '{text}'")
        if name in ("include", "exists", "ip4", "ip6") and not value:
            raise SpfError(f"'{text}' needs a value after ':'")
        terms.append(Term(text, qualifier, name, value))
    if sum(1 for t in terms if t.modifier and t.name == "redirect") > 1:
        raise SpfError("more than one redirect= modifier")
    return terms


def _split_term(body: str) -> tuple[str, str, str]:
    """'include:x' -> ('include', ':', 'x'); 'a/24' -> ('a', '/', '24'); 'redirect=x'."""
    for index, char in enumerate(body):
        if char in ":=/":
            return body[:index], char, body[index + 1 :] if char != "/" else body[index:]
    return body, "", ""


def _cidr(spec: str, ip: IpAddress) -> tuple[str, int | None]:
    """'example.com/24//64' -> ('example.com', 24 for IPv4 or 64 for IPv6)."""
    domain, _, v6 = spec.partition("//")
    domain, _, v4 = domain.partition("/")
    bits = v4 if ip.version == 4 else v6
    try:
        return domain, int(bits) if bits else None
    except ValueError:
        raise SpfError(f"'{spec}' has a bad prefix length") from None


def _in_network(ip: IpAddress, address: str, bits: int | None) -> bool:
    try:
        network = ipaddress.ip_network(
            f"{address}/{bits}" if bits is not None else address, strict=False
        )
    except ValueError:
        return False
    return network.version == ip.version and ip in network


class _Macro(Exception):
    """A domain-spec with a macro; doctor does not expand them."""


def _target(value: str, domain: str) -> str:
    if "%" in value:
        raise _Macro(value)
    return value or domain


def check_host(ip: str, domain: str, lookup: Lookup) -> SpfResult:
    """What the SPF record of `domain` says of mail sent from `ip`."""
    budget = _Budget()
    try:
        result, reason = _check(ipaddress.ip_address(ip), domain, lookup, budget)
    except SpfError as exc:
        return SpfResult("permerror", str(exc), budget.lookups)
    except LookupFailed as exc:
        return SpfResult("temperror", str(exc), budget.lookups)
    except _Macro as exc:
        return SpfResult("unknown", f"'{exc}' uses SPF macros, not evaluated here", budget.lookups)
    return SpfResult(result, reason, budget.lookups)


def _check(ip: IpAddress, domain: str, lookup: Lookup, budget: _Budget) -> tuple[str, str]:
    records = spf_records(lookup.txt(domain))
    if not records:
        return "none", f"no SPF record at {domain}"
    if len(records) > 1:
        raise SpfError(f"{domain} has {len(records)} SPF records; merge them into one")
    terms = parse_record(records[0])
    for term in terms:
        if term.modifier:
            continue
        if term.name in _COSTLY:
            budget.spend(term.text)
        here = f"{term.text} at {domain}"
        if term.name == "include":
            result, reason = _check(ip, _target(term.value, domain), lookup, budget)
            if result == "none":
                raise SpfError(f"{here} leads to no SPF record")
            if result == "pass":
                return QUALIFIERS[term.qualifier], f"{here} > {reason}"
        elif _matches(term, ip, domain, lookup, budget):
            return QUALIFIERS[term.qualifier], here
    redirect = next((t for t in terms if t.modifier and t.name == "redirect"), None)
    if redirect is not None:
        budget.spend(redirect.text)
        here = f"{redirect.text} at {domain}"
        result, reason = _check(ip, _target(redirect.value, domain), lookup, budget)
        if result == "none":
            raise SpfError(f"{here} leads to no SPF record")
        return result, f"{here} > {reason}"
    return "neutral", f"nothing in the record at {domain} matched"


def _matches(term: Term, ip: IpAddress, domain: str, lookup: Lookup, budget: _Budget) -> bool:
    """Whether a mechanism other than include matches `ip`."""
    name = term.name
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        if (name == "ip4") != (ip.version == 4):
            return False
        try:
            return ip in ipaddress.ip_network(term.value, strict=False)
        except ValueError:
            raise SpfError(f"'{term.text}' is not a valid network") from None
    if name == "exists":
        return bool(budget.answered(lookup.addresses(_target(term.value, domain))))
    if name == "ptr":
        return False  # deprecated (RFC 7208 5.5) and unknowable here: never a match
    target, bits = _cidr(term.value, ip)
    target = _target(target, domain)
    if name == "a":
        return any(_in_network(ip, a, bits) for a in budget.answered(lookup.addresses(target)))
    hosts = [host for host in budget.answered(lookup.mx(target)) if host != "."]
    if len(hosts) > MX_LIMIT:
        raise SpfError(f"{term.text} at {domain} names more than {MX_LIMIT} mail servers")
    return any(_in_network(ip, a, bits) for host in hosts for a in lookup.addresses(host))


@dataclass(frozen=True)
class Relay:
    """A configured relay and the addresses its host name resolves to."""

    name: str
    host: str
    addresses: tuple[str, ...]


def _lets_anyone(reason: str) -> bool:
    """Whether the deciding term (possibly inside includes) is a bare `all` or `+all`."""
    return reason.rpartition(" > ")[2].split()[0] in ("all", "+all")


def spf_verdict(
    domain: str, role: str, relays: list[Relay], results: dict[str, SpfResult], record: str | None
) -> CheckResult:
    """Judge the SPF record at `domain` (`role`: 'sender' or 'bounce') against the relays.

    `results` maps each relay address to its SpfResult; `record` is the SPF record found, if
    any. An empty `relays` means mail goes to the outbox: there is no relay to check.
    """
    name = f"SPF {role} domain"
    example = "v=spf1 include:<your provider's SPF domain> -all"
    if not relays:
        found = f"record: {record}" if record else "no SPF record either"
        return warned(
            name,
            f"{domain}: no SMTP relay configured (transport is outbox), so none to check; {found}",
            'set [sending] transport = "smtp" and an [[smtp]] relay, then run doctor again',
        )
    if record is None:
        return failed(
            name,
            f"no SPF record (TXT v=spf1) at {domain}: receivers cannot tell your relays are yours",
            f"publish a TXT record at {domain} such as: {example}",
        )
    problems = []
    for relay in relays:
        if not relay.addresses:
            problems.append(f"relay {relay.name} ({relay.host}) has no address in the DNS")
        for address in relay.addresses:
            outcome = results[address]
            if outcome.result != "pass":
                problems.append(
                    f"relay {relay.name} ({address}) gets '{outcome.result}' ({outcome.reason})"
                )
    if problems:
        return failed(
            name,
            f"{domain}: " + "; ".join(problems),
            f"allow the relay in the record at {domain}: add ip4:/ip6: its address, or the "
            "include: your mail provider documents (it may send from other addresses)",
        )
    lookups = max((r.lookups for r in results.values()), default=0)
    deciding = sorted({r.reason for r in results.values()})
    if any(_lets_anyone(r.reason) for r in results.values()):
        return warned(
            name,
            f"{domain}: the record lets any server on the internet send as you ({record})",
            "end the record with -all (or ~all) after the mechanisms that name your relays",
        )
    return passed(
        name,
        f"{domain} allows every relay (by {', '.join(deciding)}; {lookups} of "
        f"{LOOKUP_LIMIT} DNS lookups)",
    )
