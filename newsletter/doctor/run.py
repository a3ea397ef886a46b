"""`run_doctor`: ask the network (through `net`) and let the pure modules judge the answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dns.resolver

from newsletter.config import Config
from newsletter.deliver import db
from newsletter.deliver.came_back import recent_policy_rejections
from newsletter.deliver.message import DkimKey
from newsletter.deliver.subscribers import SubscriberStore
from newsletter.doctor import bounces, dkimkey, dmarc, endpoints, rejections, spf, volume
from newsletter.doctor.lookup import Lookup, LookupFailed
from newsletter.doctor.net import HTTP_TIMEOUT, DnsLookup, make_resolver, probe_http, probe_smtp
from newsletter.doctor.results import CheckResult, failed, passed, warned
from newsletter.errors import InputError

#: The made-up token the unsubscribe probe uses: the handler must answer, and refuse it.
PROBE_TOKEN = "doctor-probe"


def run_doctor(
    config: Config,
    *,
    resolver: dns.resolver.Resolver | None = None,
    http_timeout: float = HTTP_TIMEOUT,
) -> list[CheckResult]:
    """Every delivery check for `config`, in a fixed order. DNS goes to `resolver` (default:
    the system's); relays are reached within their own `timeout`, the web within
    `http_timeout` seconds."""
    lookup = DnsLookup(resolver or make_resolver())
    sender = config.sender_domain
    envelope = config.sending.bounce_domain or sender
    domains = [(sender, "sender")]
    if config.sending.bounce_domain:
        domains.append((config.sending.bounce_domain, "bounce"))
    results = [
        _guarded(f"SPF {role} domain", _spf, config, domain, role, lookup)
        for domain, role in domains
    ]
    results.extend(_dkim(config, lookup))
    dkim_domain = (config.dkim.domain or sender) if config.dkim else None
    results.extend(_dmarc(sender, dkim_domain, envelope, lookup))
    results.append(_guarded(bounces.NAME, _bounce_mx, config, envelope, lookup))
    if config.sending.transport == "smtp":
        results.extend(endpoints.tls_verdict(server, probe_smtp(server)) for server in config.smtp)
    results.extend(_web(config.base_url, http_timeout))
    results.append(_volume(config))
    results.append(_rejections(config))
    return results


def _dns_failure(name: str, exc: LookupFailed) -> CheckResult:
    return failed(
        name,
        f"could not check: {exc}",
        "make sure the DNS server answers (NEWSLETTER_DNS picks one) and run again",
    )


def _guarded(name: str, check: Callable[..., CheckResult], *args: Any) -> CheckResult:
    try:
        return check(*args)
    except LookupFailed as exc:
        return _dns_failure(name, exc)


def _relays(config: Config, lookup: Lookup) -> list[spf.Relay]:
    if config.sending.transport != "smtp":
        return []
    return [
        spf.Relay(server.name, server.host, tuple(lookup.addresses(server.host)))
        for server in config.smtp
    ]


def _spf(config: Config, domain: str, role: str, lookup: Lookup) -> CheckResult:
    relays = _relays(config, lookup)
    records = spf.spf_records(lookup.txt(domain))
    outcomes = {
        address: spf.check_host(address, domain, lookup)
        for relay in relays
        for address in relay.addresses
    }
    return spf.spf_verdict(domain, role, relays, outcomes, records[0] if records else None)


def _dkim(config: Config, lookup: Lookup) -> list[CheckResult]:
    if config.dkim is None:
        return [
            warned(
                dkimkey.KEY_NAME,
                "no [dkim] section: mail goes out unsigned, and Gmail and Yahoo require DKIM "
                "of bulk senders",
                "make a 2048-bit RSA key outside the project and add [dkim] selector and "
                "key_file; doctor then prints the record to publish",
            )
        ]
    try:
        key = DkimKey.from_config(config)
    except InputError as exc:
        return [failed(dkimkey.KEY_NAME, str(exc), "fix [dkim] key_file")]
    assert key is not None
    location = f"{key.selector}._domainkey.{key.domain}"
    return [
        _guarded(dkimkey.KEY_NAME, _dkim_key, location, key.private_key, lookup),
        dkimkey.signature_verdict(key),
    ]


def _dkim_key(location: str, private_key: bytes, lookup: Lookup) -> CheckResult:
    return dkimkey.key_verdict(location, private_key, lookup.txt(location))


def _dmarc(
    from_domain: str, dkim_domain: str | None, envelope: str, lookup: Lookup
) -> list[CheckResult]:
    try:
        location, records = dmarc.find_dmarc(from_domain, lookup)
    except LookupFailed as exc:
        record, policy = _dns_failure(dmarc.RECORD_NAME, exc), None
    else:
        record, policy = dmarc.record_verdict(from_domain, location, records)
    return [record, dmarc.alignment_verdict(from_domain, dkim_domain, envelope, policy)]


def _bounce_mx(config: Config, envelope: str, lookup: Lookup) -> CheckResult:
    exchangers = lookup.mx(envelope)
    has_address = bool(exchangers) or bool(lookup.addresses(envelope))
    return bounces.mx_verdict(envelope, bool(config.sending.bounce_domain), exchangers, has_address)


def _web(base_url: str, timeout: float) -> list[CheckResult]:
    answer = probe_http(base_url, timeout=timeout)
    web = endpoints.web_verdict(base_url, answer)
    if answer.status is None:
        return [
            web,
            failed(
                endpoints.UNSUBSCRIBE_NAME,
                "not checked: base_url does not answer",
                "make base_url answer first",
            ),
        ]
    url = f"{base_url.rstrip('/')}/unsubscribe/{PROBE_TOKEN}"
    get = probe_http(url, timeout=timeout)
    post = probe_http(url, b"List-Unsubscribe=One-Click", timeout=timeout)
    return [web, endpoints.unsubscribe_verdict(get, post)]


def _volume(config: Config) -> CheckResult:
    path = config.database_location
    if not db.exists(path):
        return passed(volume.NAME, f"no subscriber database yet ({path})")
    with SubscriberStore.open(path) as store:
        domains = store.count_by_domain()
    return volume.volume_verdict(volume.provider_counts(domains), sum(domains.values()))


def _rejections(config: Config) -> CheckResult:
    path = config.database_location
    if not db.exists(path):
        return passed(rejections.NAME, f"no subscriber database yet ({path})")
    with SubscriberStore.open(path) as store:
        found = recent_policy_rejections(store.conn, rejections.DAYS)
    return rejections.rejections_verdict(found)
