"""The doctor's pure logic: SPF evaluation, DKIM and DMARC records, alignment, providers,
and the verdicts on what the probes saw. DNS answers come from a dict here; the same checks
run against a real DNS server in test_doctor.py."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.config import SmtpServer, parse_config
from newsletter.doctor import Level
from newsletter.doctor.bounces import mx_verdict
from newsletter.doctor.dkimkey import (
    KeyProblem,
    key_verdict,
    published_key,
    record_for,
    same_key,
    tag_list,
)
from newsletter.doctor.dmarc import aligned, find_dmarc, organisational_domain, parse_dmarc
from newsletter.doctor.endpoints import HttpAnswer, SmtpProbe, tls_verdict, web_verdict
from newsletter.doctor.lookup import LookupFailed
from newsletter.doctor.spf import Relay, SpfError, check_host, parse_record, spf_verdict
from newsletter.doctor.volume import provider, provider_counts, volume_verdict
from newsletter.errors import ConfigError


@dataclass
class Zone:
    """DNS answers from dicts; names in `broken` fail as a time-out would."""

    txt_records: dict[str, list[str]] = field(default_factory=dict)
    hosts: dict[str, list[str]] = field(default_factory=dict)
    exchangers: dict[str, list[str]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)

    def _get(self, table: dict[str, list[str]], name: str) -> list[str]:
        if name in self.broken:
            raise LookupFailed(f"time-out for {name}")
        return table.get(name, [])

    def txt(self, name: str) -> list[str]:
        return self._get(self.txt_records, name)

    def addresses(self, name: str) -> list[str]:
        return self._get(self.hosts, name)

    def mx(self, name: str) -> list[str]:
        return self._get(self.exchangers, name)


def spf(record: str) -> Zone:
    """A zone where example.org has this SPF record."""
    return Zone({"example.org": [record]})


@pytest.mark.parametrize(
    ("record", "ip", "result"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.7", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "198.51.100.1", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "198.51.100.1", "softfail"),
        ("v=spf1 ip4:192.0.2.0/24", "198.51.100.1", "neutral"),
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::25", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "192.0.2.7", "fail"),
        ("v=spf1 -ip4:192.0.2.7 +all", "192.0.2.7", "fail"),
        ("v=spf1 a -all", "192.0.2.10", "pass"),
        ("v=spf1 a:relay.example.net/24 -all", "198.51.100.99", "pass"),
        ("v=spf1 mx -all", "192.0.2.25", "pass"),
        ("v=spf1 mx:relay.example.net -all", "192.0.2.25", "fail"),
        ("v=spf1 exists:relay.example.net -all", "203.0.113.1", "pass"),
        ("v=spf1 ptr -all", "192.0.2.10", "fail"),
        ("v=spf1 include:_spf.example.net -all", "203.0.113.5", "pass"),
        ("v=spf1 redirect=_spf.example.net", "203.0.113.5", "pass"),
        ("v=spf1 redirect=_spf.example.net", "192.0.2.10", "softfail"),
        ("v=spf1 include:nothing.example.net -all", "192.0.2.10", "permerror"),
        ("v=spf1 redirect=nothing.example.net", "192.0.2.10", "permerror"),
        ("v=spf1 include:%{d}.example.net -all", "192.0.2.10", "unknown"),
        ("v=spf1 bogus -all", "192.0.2.10", "permerror"),
    ],
)
def test_spf_check_host(record: str, ip: str, result: str) -> None:
    zone = spf(record)
    zone.txt_records["_spf.example.net"] = ["v=spf1 ip4:203.0.113.0/24 ~all"]
    zone.hosts = {
        "example.org": ["192.0.2.10"],
        "relay.example.net": ["198.51.100.1"],
        "mx1.example.org": ["192.0.2.25"],
    }
    zone.exchangers = {"example.org": ["mx1.example.org"]}
    assert check_host(ip, "example.org", zone).result == result


def test_spf_reason_follows_includes() -> None:
    zone = spf("v=spf1 include:a.example.net -all")
    zone.txt_records["a.example.net"] = ["v=spf1 ip4:192.0.2.1 -all"]
    outcome = check_host("192.0.2.1", "example.org", zone)
    assert outcome.reason == "include:a.example.net at example.org > ip4:192.0.2.1 at a.example.net"
    assert outcome.lookups == 1


def test_spf_lookup_limits() -> None:
    ten = " ".join(f"a:h{i}.example.net" for i in range(10))
    zone = spf(f"v=spf1 {ten} ip4:192.0.2.1 -all")
    zone.hosts = {f"h{i}.example.net": ["203.0.113.1"] for i in range(10)}
    assert check_host("192.0.2.1", "example.org", zone).result == "pass"
    zone.txt_records["example.org"] = [f"v=spf1 {ten} a:h10.example.net ip4:192.0.2.1 -all"]
    outcome = check_host("192.0.2.1", "example.org", zone)
    assert (outcome.result, outcome.reason) == (
        "permerror",
        "more than 10 DNS lookups (at a:h10.example.net)",
    )
    # a third lookup that finds nothing is a permanent error too
    zone.txt_records["example.org"] = [
        "v=spf1 a:x.example.net a:y.example.net a:z.example.net -all"
    ]
    assert "found nothing" in check_host("192.0.2.1", "example.org", zone).reason


def test_spf_errors_and_time_outs() -> None:
    two = Zone({"example.org": ["v=spf1 -all", "v=spf1 +all"]})
    assert check_host("192.0.2.1", "example.org", two).result == "permerror"
    broken = spf("v=spf1 include:slow.example.net -all")
    broken.broken = {"slow.example.net"}
    assert check_host("192.0.2.1", "example.org", broken).result == "temperror"
    assert check_host("192.0.2.1", "example.org", Zone()).result == "none"


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 foo",
        "v=spf1 include:",
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 -x=y",
    ],
)
def test_spf_syntax_errors(record: str) -> None:
    with pytest.raises(SpfError):
        parse_record(record)


def test_parse_record_keeps_qualifiers_and_modifiers() -> None:
    terms = parse_record("v=spf1 ~mx/24 include:x.example exp=why.example -all")
    assert [(t.qualifier, t.name, t.value, t.modifier) for t in terms] == [
        ("~", "mx", "/24", False),
        ("+", "include", "x.example", False),
        ("", "exp", "why.example", True),
        ("-", "all", "", False),
    ]


def test_spf_verdict_warns_about_an_include_that_lets_anyone_send() -> None:
    zone = spf("v=spf1 include:lax.example.net -all")
    zone.txt_records["lax.example.net"] = ["v=spf1 +all"]
    relay = Relay("r", "192.0.2.1", ("192.0.2.1",))
    outcome = check_host("192.0.2.1", "example.org", zone)
    verdict = spf_verdict("example.org", "sender", [relay], {"192.0.2.1": outcome}, "v=spf1 ...")
    assert verdict.level == Level.WARN and "any server" in verdict.finding


# --- DKIM -----------------------------------------------------------------------------------


def test_tag_list_removes_folding_white_space() -> None:
    assert tag_list("v=DKIM1; K=rsa;\r\n p=MIIB AAAA\t==") == {
        "v": "DKIM1",
        "k": "rsa",
        "p": "MIIBAAAA==",
    }


def test_published_key_reads_rsa_in_both_encodings_and_ed25519() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    for fmt in (serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1):
        p = base64.b64encode(key.public_bytes(serialization.Encoding.DER, fmt)).decode()
        assert same_key(published_key({"p": p}), key)
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = ed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert same_key(published_key({"k": "ed25519", "p": base64.b64encode(raw).decode()}), ed)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"p": ""}, "revoked"),
        ({"k": "rsa"}, "no p="),
        ({"p": "not base64!"}, "not valid base64"),
        ({"p": "AAAA"}, "not a valid rsa public key"),
        ({"k": "ed25519", "p": "AAAA"}, "not a valid ed25519 public key"),
    ],
)
def test_published_key_problems(tags: dict[str, str], message: str) -> None:
    with pytest.raises(KeyProblem, match=message):
        published_key(tags)


# --- DMARC and alignment --------------------------------------------------------------------


def test_organisational_domain_uses_the_public_suffix_list() -> None:
    assert organisational_domain("news.example.co.uk") == "example.co.uk"
    assert organisational_domain("a.b.example.org.") == "example.org"
    assert organisational_domain("example.org") == "example.org"


@pytest.mark.parametrize(
    ("other", "mode", "expected"),
    [
        ("news.example.co.uk", "s", True),
        ("bounces.example.co.uk", "s", False),
        ("bounces.example.co.uk", "r", True),
        ("other.co.uk", "r", False),
        ("NEWS.Example.CO.UK.", "s", True),
    ],
)
def test_alignment(other: str, mode: str, expected: bool) -> None:
    assert aligned("news.example.co.uk", other, mode) is expected


def test_dmarc_record_is_found_at_the_organisational_domain() -> None:
    zone = Zone({"_dmarc.example.org": ["v=DMARC1; p=reject; sp=quarantine", "unrelated"]})
    location, records = find_dmarc("news.example.org", zone)
    assert (location, records) == ("_dmarc.example.org", ["v=DMARC1; p=reject; sp=quarantine"])
    policy = parse_dmarc(location, records[0], subdomain=True)
    assert (policy.policy, policy.adkim, policy.pct) == ("quarantine", "r", 100)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("v=DMARC1; p=maybe", "p= must be one of"),
        ("v=DMARC1", "p= must be one of"),
        ("v=DMARC1; p=none; adkim=x", "adkim= must be r or s"),
        ("v=DMARC1; p=none; pct=all", "pct= must be a number"),
    ],
)
def test_invalid_dmarc_records(record: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dmarc("_dmarc.example.org", record, subdomain=False)


# --- bounces, relays, web, volume -----------------------------------------------------------


def test_bounce_mx_verdicts() -> None:
    assert mx_verdict("b.example.org", True, ["mx.example.org"], True).level == Level.PASS
    assert "inbound listener" in mx_verdict("b.example.org", True, ["mx.example.org"], True).finding
    assert mx_verdict("b.example.org", True, ["."], True).level == Level.FAIL
    assert mx_verdict("b.example.org", False, [], True).level == Level.WARN
    assert mx_verdict("b.example.org", False, [], False).level == Level.FAIL


def test_tls_verdict_on_a_remote_relay_without_tls_fails() -> None:
    server = SmtpServer(host="smtp.example.net", port=25, security="none")
    assert tls_verdict(server, SmtpProbe(True)).level == Level.FAIL
    wrong_port = SmtpServer(host="smtp.example.net", port=465, security="starttls")
    verdict = tls_verdict(wrong_port, SmtpProbe(False, error="timed out"))
    assert verdict.level == Level.FAIL and 'port 465 expects security = "tls"' in verdict.finding


def test_plain_http_base_url_fails_unless_on_this_machine() -> None:
    public = web_verdict("http://news.example.org", HttpAnswer("http://news.example.org", 200))
    assert public.level == Level.FAIL and "plain http" in public.finding
    local = web_verdict("http://localhost:8000", HttpAnswer("http://localhost:8000", 200))
    assert local.level == Level.WARN
    https = web_verdict("https://news.example.org", HttpAnswer("https://news.example.org", 404))
    assert https.level == Level.PASS
    down = web_verdict("https://news.example.org", HttpAnswer("https://news.example.org", 502))
    assert down.level == Level.FAIL
    untrusted = HttpAnswer("https://news.example.org", None, error="bad cert", tls_failed=True)
    assert "certificate" in web_verdict("https://news.example.org", untrusted).fix


@pytest.mark.parametrize(
    ("domain", "name"),
    [
        ("gmail.com", "Gmail"),
        ("GoogleMail.com", "Gmail"),
        ("hotmail.co.uk", "Outlook.com"),
        ("live.fr", "Outlook.com"),
        ("outlook.com", "Outlook.com"),
        ("msn.com", "Outlook.com"),
        ("yahoo.co.jp", "Yahoo"),
        ("aol.com", "Yahoo"),
        ("mail.yahoo.com", None),
        ("example.org", None),
        ("gmail.example.org", None),
    ],
)
def test_provider(domain: str, name: str | None) -> None:
    assert provider(domain) == name


def test_volume_threshold_is_per_provider() -> None:
    counts = provider_counts({"gmail.com": 3_000, "yahoo.com": 3_000, "outlook.com": 3_000})
    assert volume_verdict(counts, 9_000).level == Level.PASS
    counts = provider_counts({"gmail.com": 4_999, "googlemail.com": 1})
    verdict = volume_verdict(counts, 5_000)
    assert verdict.level == Level.WARN and "bulk sender to Gmail" in verdict.finding


def test_bounce_domain_is_checked_and_lower_cased(tmp_path: Path) -> None:
    base = 'name = "N"\nbase_url = "https://example.org"\npostal_address = "P"\n'
    base += '[sender]\nname = "N"\naddress = "a@example.org"\n[sending]\n'
    config = parse_config(base + 'bounce_domain = "Bounces.Example.ORG."\n', tmp_path / "n.toml")
    assert config.sending.bounce_domain == "bounces.example.org"
    with pytest.raises(ConfigError, match=r"sending.bounce_domain: 'bounces example' is not a"):
        parse_config(base + 'bounce_domain = "bounces example"\n', tmp_path / "n.toml")


def test_key_verdicts() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    record = record_for(private.public_key())
    where = "nl._domainkey.example.org"
    short = key_verdict(where, pem, [record])
    assert short.level == Level.WARN and "RSA 1024-bit key" in short.finding
    testing = key_verdict(where, pem, [record + "; t=y"])
    assert testing.level == Level.WARN and "t=y" in testing.finding
    assert "2 DKIM records" in key_verdict(where, pem, [record, record]).finding
    bad = key_verdict(where, pem, ["v=DKIM1; p="])
    assert bad.level == Level.FAIL and "revoked" in bad.finding and record in bad.fix
    unreadable = key_verdict(where, b"-----BEGIN NOTHING-----", [record])
    assert unreadable.level == Level.FAIL and "not an unencrypted PEM" in unreadable.finding
