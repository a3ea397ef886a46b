"""`newsletter doctor` against real servers on 127.0.0.1: dnsmasq with chosen records,
aiosmtpd with and without STARTTLS, and the web app under uvicorn."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID
from dns_server import DNSMASQ, Records, running_dns
from smtp_sink import Sink, free_port
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import load_config
from newsletter.deliver.subscribers import ImportRow, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.doctor import CheckResult, Level, run_doctor
from newsletter.doctor.net import DnsLookup, make_resolver
from newsletter.web.app import create_app

pytestmark = pytest.mark.skipif(
    DNSMASQ is None, reason="needs Debian's dnsmasq-base (make browser installs it as root)"
)

CONFIG = """\
name = "Doctor's Digest"
base_url = "{base_url}"
postal_address = "1 Test Street, Testville"

[sender]
name = "Doctor's Digest"
address = "hello@news.example.org"

[sending]
transport = "{transport}"
bounce_domain = "bounces.example.org"
"""
RELAY = """
[[smtp]]
name = "{name}"
host = "127.0.0.1"
port = {port}
security = "{security}"
timeout = 5
"""
DKIM = """
[dkim]
selector = "nl"
key_file = "{key_file}"
{domain}
"""


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def dkim_record(key: rsa.RSAPrivateKey) -> str:
    """The DKIM TXT record of `key`, made here independently of the code under test."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(_pem(key))
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the test certificate the only one ssl.create_default_context trusts."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def relay(certificate: tuple[Path, Path]) -> Iterator[Callable[..., int]]:
    """Start aiosmtpd on 127.0.0.1: plain, with STARTTLS, or implicit TLS; return its port."""
    controllers: list[Controller] = []

    def start(mode: str = "starttls") -> int:
        port = free_port()
        context = _server_context(certificate)
        tls = {"tls_context": context} if mode == "starttls" else {}
        implicit = {"ssl_context": context} if mode == "tls" else {}
        controller = Controller(Sink(), hostname="127.0.0.1", port=port, **tls, **implicit)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def web_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real web app (sign-up, unsubscribe) under uvicorn."""
    root = tmp_path_factory.mktemp("web")
    (root / "newsletter.toml").write_text(
        CONFIG.format(base_url="http://127.0.0.1", transport="outbox")
    )
    config = load_config(root / "newsletter.toml")
    with serving(create_app(config, signer_for(config))) as url:
        yield url


def good_zone(key: rsa.RSAPrivateKey) -> dict[str, Records]:
    """Records under which a correctly set-up newsletter passes."""
    return {
        "txt": {
            "news.example.org": "v=spf1 include:_spf.relay.example.net -all",
            "_spf.relay.example.net": (
                "v=spf1 a:smtp.relay.example.net mx:relay.example.net ip4:192.0.2.0/24 ~all"
            ),
            "bounces.example.org": "v=spf1 redirect=news.example.org",
            "nl._domainkey.news.example.org": dkim_record(key),
            "_dmarc.example.org": "v=DMARC1; p=reject; rua=mailto:dmarc@example.org",
        },
        "mx": {
            "bounces.example.org": "mx.example.org",
            "relay.example.net": "mx.relay.example.net",
        },
        "hosts": {
            "mx.example.org": "127.0.0.3",
            "mx.relay.example.net": "127.0.0.4",
            "smtp.relay.example.net": "127.0.0.1",
        },
    }


Doctor = Callable[..., dict[str, CheckResult]]


@pytest.fixture
def doctor(project: Path, tmp_path: Path, rsa_key: rsa.RSAPrivateKey, web_url: str) -> Doctor:
    """Write the config and records, run `run_doctor` and return its results by name."""

    def run(
        zone: dict[str, Records] | None = None,
        relays: Sequence[tuple[int, str]] = (),
        dkim_domain: str | None = None,
        key: bytes | None = None,
        base_url: str | None = None,
        extra: str = "",
    ) -> dict[str, CheckResult]:
        key_file = tmp_path / "dkim.pem"  # outside the project folder
        key_file.write_bytes(key or _pem(rsa_key))
        text = CONFIG.format(base_url=base_url or web_url, transport="smtp" if relays else "outbox")
        text = text + extra
        for i, (port, security) in enumerate(relays):
            text += RELAY.format(name=f"relay{i}", port=port, security=security)
        domain = f'domain = "{dkim_domain}"' if dkim_domain else ""
        text += DKIM.format(key_file=key_file, domain=domain)
        (project / "newsletter.toml").write_text(text)
        records = good_zone(rsa_key) if zone is None else zone
        with running_dns(tmp_path, **records) as port:
            results = run_doctor(
                load_config(project / "newsletter.toml"),
                resolver=make_resolver(f"127.0.0.1:{port}", timeout=2),
                http_timeout=3,
            )
        return {result.name: result for result in results}

    return run


def test_a_good_setup_passes_every_check(
    doctor: Doctor, relay: Callable[..., int], trusted: None
) -> None:
    results = doctor(relays=[(relay("starttls"), "starttls")])
    levels = {name: result.level for name, result in results.items()}
    assert levels == {
        "SPF sender domain": Level.PASS,
        "SPF bounce domain": Level.PASS,
        "DKIM key": Level.PASS,
        "DKIM signature": Level.PASS,
        "DMARC record": Level.PASS,
        "DMARC alignment": Level.PASS,
        "bounce MX": Level.PASS,
        "TLS relay relay0": Level.PASS,
        "HTTPS base_url": Level.WARN,  # plain http on loopback: fine for a test only
        "unsubscribe endpoint": Level.PASS,
        "bulk-sender volume": Level.PASS,
        "policy rejections": Level.PASS,
    }, results
    assert (
        "include:_spf.relay.example.net at news.example.org > a:smtp.relay.example.net at "
        "_spf.relay.example.net" in results["SPF sender domain"].finding
    )
    assert "_dmarc.example.org (p=reject)" in results["DMARC record"].finding
    signature = results["DKIM signature"].finding
    assert "from" in signature and "list-unsubscribe, list-unsubscribe-post" in signature
    assert "mx.example.org" in results["bounce MX"].finding
    assert "STARTTLS (TLSv1.3" in results["TLS relay relay0"].finding
    assert "RSA 2048-bit" in results["DKIM key"].finding


def test_missing_records_fail_with_what_to_publish(
    doctor: Doctor, relay: Callable[..., int], trusted: None, rsa_key: rsa.RSAPrivateKey
) -> None:
    results = doctor(zone={}, relays=[(relay("starttls"), "starttls")])
    for name in ("SPF sender domain", "SPF bounce domain", "DKIM key", "DMARC record",
                 "bounce MX"):  # fmt: skip
        assert results[name].level == Level.FAIL, results[name]
    assert "no SPF record" in results["SPF sender domain"].finding
    # the fix names the exact record to publish
    assert dkim_record(rsa_key) in results["DKIM key"].fix
    assert "nl._domainkey.news.example.org" in results["DKIM key"].fix
    assert "no DMARC record at _dmarc.news.example.org" in results["DMARC record"].finding
    assert "no MX and no address" in results["bounce MX"].finding
    assert results["DMARC alignment"].level == Level.PASS  # identifiers align; records absent


def test_spf_that_leaves_out_the_relay_fails(doctor: Doctor, relay: Callable[..., int]) -> None:
    zone = good_zone(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    zone["txt"] = {**zone["txt"], "news.example.org": "v=spf1 ip4:192.0.2.1 mx -all"}
    results = doctor(zone=zone, relays=[(relay("none"), "none")])
    spf = results["SPF sender domain"]
    assert spf.level == Level.FAIL
    assert "relay relay0 (127.0.0.1) gets 'fail' (-all at news.example.org)" in spf.finding
    assert "ip4:" in spf.fix
    # the bounce domain redirects to the sender's record, so it fails the same way
    assert results["SPF bounce domain"].level == Level.FAIL


def test_spf_past_ten_lookups_is_a_permanent_error(
    doctor: Doctor, relay: Callable[..., int]
) -> None:
    chain = {f"s{i}.example.net": f"v=spf1 include:s{i + 1}.example.net -all" for i in range(11)}
    chain["s11.example.net"] = "v=spf1 ip4:127.0.0.1 -all"
    zone = good_zone(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    zone["txt"] = {**zone["txt"], **chain, "news.example.org": "v=spf1 include:s0.example.net"}
    results = doctor(zone=zone, relays=[(relay("none"), "none")])
    assert results["SPF sender domain"].level == Level.FAIL
    assert "'permerror' (more than 10 DNS lookups" in results["SPF sender domain"].finding


def test_dkim_key_mismatch_fails(doctor: Doctor, rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    results = doctor(key=_pem(other))
    key = results["DKIM key"]
    assert key.level == Level.FAIL
    assert "is not the public half of [dkim] key_file" in key.finding
    assert dkim_record(other) in key.fix


def test_ed25519_key_in_pem_matches_and_signs(doctor: Doctor) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    zone = good_zone(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    record = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    zone["txt"] = {**zone["txt"], "nl._domainkey.news.example.org": record}
    results = doctor(zone=zone, key=_pem(key))
    assert results["DKIM key"].level == Level.PASS
    assert "Ed25519" in results["DKIM key"].finding
    assert results["DKIM signature"].level == Level.PASS
    assert "ed25519-sha256" in results["DKIM signature"].finding


def test_dmarc_not_aligned_fails(doctor: Doctor, rsa_key: rsa.RSAPrivateKey) -> None:
    zone = good_zone(rsa_key)
    zone["txt"] = {
        **zone["txt"],
        "nl._domainkey.mailer.example.com": dkim_record(rsa_key),
    }
    results = doctor(zone=zone, dkim_domain="mailer.example.com")
    assert results["DKIM key"].level == Level.PASS  # published under the other domain
    alignment = results["DMARC alignment"]
    assert alignment.level == Level.WARN  # only the envelope (bounces.example.org) aligns
    assert "DKIM d=mailer.example.com does not align (relaxed)" in alignment.finding

    policy = "v=DMARC1; p=quarantine; aspf=s; rua=mailto:d@example.org"
    strict = {**zone["txt"], "_dmarc.example.org": policy}
    results = doctor(zone={**zone, "txt": strict}, dkim_domain="mailer.example.com")
    alignment = results["DMARC alignment"]
    assert alignment.level == Level.FAIL
    assert "envelope domain bounces.example.org does not align (strict)" in alignment.finding
    assert 'domain = "news.example.org"' in alignment.fix


def test_dmarc_p_none_is_a_warning(doctor: Doctor, rsa_key: rsa.RSAPrivateKey) -> None:
    zone = good_zone(rsa_key)
    zone["txt"] = {**zone["txt"], "_dmarc.news.example.org": "v=DMARC1; p=none"}
    result = doctor(zone=zone)["DMARC record"]
    assert result.level == Level.WARN
    assert "_dmarc.news.example.org (p=none)" in result.finding
    assert "p=quarantine" in result.fix


def test_outbox_transport_has_no_relay_to_check(doctor: Doctor) -> None:
    results = doctor()
    assert results["SPF sender domain"].level == Level.WARN
    assert "no SMTP relay" in results["SPF sender domain"].finding
    assert not any(name.startswith("TLS") for name in results)


@pytest.mark.parametrize(
    ("mode", "security", "level", "words"),
    [
        ("starttls", "starttls", Level.PASS, "speaks STARTTLS"),
        ("tls", "tls", Level.PASS, "speaks implicit TLS"),
        ("plain", "starttls", Level.FAIL, "offers no STARTTLS"),
        ("plain", "none", Level.WARN, "offers no TLS; tolerable only for a relay on this"),
        ("starttls", "none", Level.WARN, 'security = "none" sends in the clear'),
    ],
)
def test_relay_tls(
    doctor: Doctor, relay: Callable[..., int], trusted: None,
    mode: str, security: str, level: Level, words: str,
) -> None:  # fmt: skip
    result = doctor(relays=[(relay(mode), security)])["TLS relay relay0"]
    assert result.level == level, result
    assert words in result.finding


def test_relay_with_an_untrusted_certificate_fails(
    doctor: Doctor, relay: Callable[..., int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-cas.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    result = doctor(relays=[(relay("starttls"), "starttls")])["TLS relay relay0"]
    assert result.level == Level.FAIL
    assert "certificate" in result.finding


def test_a_relay_that_does_not_answer_fails(doctor: Doctor) -> None:
    result = doctor(relays=[(free_port(), "starttls")])["TLS relay relay0"]
    assert result.level == Level.FAIL
    assert "no SMTP conversation with 127.0.0.1" in result.finding


def test_a_site_without_the_unsubscribe_endpoint_fails(doctor: Doctor) -> None:
    bare = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])
    with serving(bare) as url:
        results = doctor(base_url=url)
    assert results["HTTPS base_url"].level == Level.WARN
    assert results["unsubscribe endpoint"].level == Level.FAIL
    assert "GET answers 404" in results["unsubscribe endpoint"].finding


def test_https_base_url_with_a_trusted_or_untrusted_certificate(
    doctor: Doctor, certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "newsletter.toml").write_text(CONFIG.format(base_url="https://x", transport="outbox"))
    config = load_config(web / "newsletter.toml")
    tls = {"ssl_certfile": str(certificate[0]), "ssl_keyfile": str(certificate[1])}
    with serving(create_app(config, signer_for(config)), **tls) as url:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        trusted = doctor(base_url=url)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        untrusted = doctor(base_url=url)
    assert trusted["HTTPS base_url"].level == Level.PASS
    assert f"{url} answers over https" in trusted["HTTPS base_url"].finding
    assert trusted["unsubscribe endpoint"].level == Level.PASS
    assert untrusted["HTTPS base_url"].level == Level.FAIL
    assert "TLS failed" in untrusted["HTTPS base_url"].finding


def test_a_base_url_that_does_not_answer_fails(doctor: Doctor) -> None:
    results = doctor(base_url=f"http://127.0.0.1:{free_port()}")
    assert results["HTTPS base_url"].level == Level.FAIL
    assert results["unsubscribe endpoint"].level == Level.FAIL


def _subscribers(project: Path, counts: dict[str, int]) -> None:
    rows = [
        ImportRow(0, f"reader{i}@{domain}")
        for domain, count in counts.items()
        for i in range(count)
    ]
    with SubscriberStore.open(project / "newsletter.db") as store:
        store.import_rows(rows)


def test_volume_past_the_bulk_threshold_warns(doctor: Doctor, project: Path) -> None:
    _subscribers(project, {"gmail.com": 4_000, "googlemail.com": 1_000, "hotmail.co.uk": 3,
                           "yahoo.fr": 2, "example.com": 5})  # fmt: skip
    result = doctor()["bulk-sender volume"]
    assert result.level == Level.WARN
    assert "5,010 active subscribers (Gmail 5,000, Outlook.com 3, Yahoo 2)" in result.finding
    assert "bulk sender to Gmail" in result.finding
    assert "0.3 %" in result.fix and "one-click" in result.fix


def test_volume_under_the_threshold_passes(doctor: Doctor, project: Path) -> None:
    _subscribers(project, {"gmail.com": 20, "outlook.com": 5, "aol.com": 1})
    result = doctor()["bulk-sender volume"]
    assert result.level == Level.PASS
    assert "Gmail 20, Outlook.com 5, Yahoo 1" in result.finding


def test_recent_policy_rejections_from_the_store_warn(doctor: Doctor, project: Path) -> None:
    assert "no subscriber database" in doctor()["policy rejections"].finding
    with SubscriberStore.open(project / "newsletter.db") as store:
        reader = store.add("ann@example.com")
        for received, issue, status, reason in (
            (dt.datetime.now(dt.UTC) - dt.timedelta(days=40), "2026-09-01-old", "5.7.1", "old"),
            (dt.datetime.now(dt.UTC), "2026-11-24-new", "5.7.1", "blocked using a blocklist"),
            (dt.datetime.now(dt.UTC), "2026-11-24-new", "5.7.26", "DMARC policy"),
        ):
            store.conn.execute(
                "INSERT INTO inbound_events (received_at, source, kind, class, status, issue,"
                " subscriber_id, reason, action, decision) VALUES (?, 'test', 'bounce',"
                " 'policy', ?, ?, ?, ?, 'flagged', '{}')",
                (received.isoformat(timespec="seconds"), status, issue, reader.id, reason),
            )
        store.conn.execute(  # a hard bounce is about the reader, not the sender
            "INSERT INTO inbound_events (received_at, source, kind, class, issue, action,"
            " decision) VALUES (?, 'test', 'bounce', 'hard', 'x', 'bounced', '{}')",
            (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),),
        )
    result = doctor()["policy rejections"]
    assert result.level == Level.WARN
    assert result.finding.startswith("2 in the last 30 days (2026-11-24-new: 2)")
    assert "5.7.26 DMARC policy; 5.7.1 blocked using a blocklist" in result.finding
    assert "inbound list" in result.fix


@pytest.mark.slow  # waits out the DNS and HTTP timeouts
def test_a_dns_server_that_does_not_answer_is_a_failure_not_a_pass(project: Path) -> None:
    (project / "newsletter.toml").write_text(
        CONFIG.format(base_url=f"http://127.0.0.1:{free_port()}", transport="outbox")
    )
    resolver = make_resolver(f"127.0.0.1:{free_port()}", timeout=0.2)
    results = {r.name: r for r in run_doctor(load_config(project / "newsletter.toml"),
                                             resolver=resolver, http_timeout=1)}  # fmt: skip
    for name in ("SPF sender domain", "DMARC record", "bounce MX"):
        assert results[name].level == Level.FAIL
        assert "could not check" in results[name].finding


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def dns_env(
    doctor: Doctor, relay: Callable[..., int], trusted: None, tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:  # fmt: skip
    """A good config and a loopback DNS server, named by NEWSLETTER_DNS."""
    doctor(relays=[(relay("starttls"), "starttls")])  # writes newsletter.toml and the key
    with running_dns(tmp_path, **good_zone(rsa_key)) as port:
        monkeypatch.setenv("NEWSLETTER_DNS", f"127.0.0.1:{port}")
        yield


def test_command_prints_a_line_per_check_and_exits_0(runner: CliRunner, dns_env: None) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("pass  DKIM key: the key at nl._domainkey") for line in lines)
    assert any(line.startswith("warn  HTTPS base_url:") for line in lines)
    assert any(line.strip().startswith("→ set base_url to the public https") for line in lines)
    assert lines[-1] == "11 pass, 1 warn, 0 fail"


def test_command_json_and_exit_1_on_a_failure(
    runner: CliRunner, dns_env: None, project: Path
) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace("news.example.org", "unknown.example.org"))
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["SPF sender domain"]["level"] == "fail"
    assert checks["DMARC record"]["level"] == "pass"  # found at the organisational domain
    assert set(checks["DKIM key"]) == {"name", "level", "finding", "fix"}


def test_command_refuses_a_bad_dns_setting(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DNS", "dns.example.org:53")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 2
    assert "NEWSLETTER_DNS" in result.stderr and "ADDRESS[:PORT]" in result.stderr
    assert "Traceback" not in result.output


def test_dns_lookup_answers_from_the_server(tmp_path: Path) -> None:
    long = "v=DKIM1; k=rsa; p=" + "A" * 600  # three TXT strings, joined again
    records = {
        "txt": {"example.org": ["v=spf1 -all", long]},
        "mx": {"example.org": ["mx1.example.org", "mx2.example.org"]},
        "hosts": {"smtp.example.org": ["192.0.2.1", "2001:db8::1"]},
    }
    with running_dns(tmp_path, **records) as port:
        lookup = DnsLookup(make_resolver(f"127.0.0.1:{port}", timeout=2))
        assert sorted(lookup.txt("example.org")) == [long, "v=spf1 -all"]
        assert lookup.mx("example.org") == ["mx1.example.org", "mx2.example.org"]
        assert lookup.addresses("smtp.example.org") == ["192.0.2.1", "2001:db8::1"]
        assert lookup.addresses("198.51.100.7") == ["198.51.100.7"]  # an address is itself
        assert lookup.txt("missing.example.org") == []
        assert lookup.mx("smtp.example.org") == []
