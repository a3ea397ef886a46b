"""The doctor's I/O: DNS through dnspython, SMTP through smtplib, HTTP through urllib.

Every wait is bounded: the resolver's lifetime, the relay's own `timeout`, the HTTP timeout.
TLS is verified with the system's trust store (`ssl.create_default_context`, which honours
SSL_CERT_FILE), as the sender does.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
import urllib.error
import urllib.request

import dns.exception
import dns.resolver
from dns.rdata import Rdata
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from newsletter.config import SmtpServer
from newsletter.doctor.endpoints import HttpAnswer, SmtpProbe
from newsletter.doctor.lookup import LookupFailed
from newsletter.errors import InputError, NewsletterError, Problem

DNS_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0


def make_resolver(server: str | None = None, timeout: float = DNS_TIMEOUT) -> dns.resolver.Resolver:
    """A resolver asking `server` ('127.0.0.1:5353', '[::1]:53' or an address), else the
    system's (/etc/resolv.conf); every query gives up after `timeout` seconds."""
    if server:
        host, port = _host_port(server)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise NewsletterError(
                "no DNS server configured on this machine; set NEWSLETTER_DNS=ADDRESS:PORT"
            ) from None
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def _host_port(server: str) -> tuple[str, int]:
    text = server.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise InputError(
            Problem(
                f"'{server}' is not ADDRESS[:PORT] (e.g. 127.0.0.1:5353 or [::1]:53)",
                field="NEWSLETTER_DNS",
                code="bad-option",
            )
        ) from None
    return host, number


def _text(record: Rdata) -> str:
    """A TXT record's strings joined, an MX record's host ('.' for a null MX), an address."""
    if isinstance(record, TXT):
        return b"".join(record.strings).decode("utf-8", "replace")
    if isinstance(record, MX):
        return record.exchange.to_text(omit_final_dot=True) or "."
    return record.to_text()


class DnsLookup:
    """`lookup.Lookup` over a dnspython resolver; each question is asked once per run."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver
        self._answers: dict[tuple[str, str], list[str]] = {}

    def _ask(self, name: str, kind: str) -> list[str]:
        key = (name.lower().rstrip("."), kind)
        if key not in self._answers:
            try:
                answer = list(self._resolver.resolve(key[0] + ".", kind, search=False))
                answer.sort(key=lambda record: record.preference if isinstance(record, MX) else 0)
                self._answers[key] = [_text(record) for record in answer]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                self._answers[key] = []
            except dns.exception.DNSException as exc:
                raise LookupFailed(f"no answer for {kind} {key[0]}: {exc}") from None
        return self._answers[key]

    def txt(self, name: str) -> list[str]:
        """The TXT records at `name`, each one's strings joined."""
        return self._ask(name, "TXT")

    def addresses(self, name: str) -> list[str]:
        """The A and AAAA addresses of `name`, or `name` itself if it is an address."""
        try:
            return [str(ipaddress.ip_address(name))]
        except ValueError:
            return self._ask(name, "A") + self._ask(name, "AAAA")

    def mx(self, name: str) -> list[str]:
        """The MX hosts of `name`, most preferred first."""
        return self._ask(name, "MX")


def probe_smtp(server: SmtpServer) -> SmtpProbe:
    """Connect to the relay as the sender would (within its timeout), EHLO, and try TLS:
    implicit for security = "tls", else STARTTLS when offered. Nothing is sent."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP | None = None
    offered = False
    try:
        if server.security == "tls":
            smtp = smtplib.SMTP_SSL(
                server.host, server.port, timeout=server.timeout, context=context
            )
            smtp.ehlo()
            return SmtpProbe(True, tls_version=_tls_version(smtp))
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
        smtp.ehlo()
        offered = smtp.has_extn("starttls")
        if not offered:
            return SmtpProbe(True)
        smtp.starttls(context=context)
        return SmtpProbe(True, True, _tls_version(smtp))
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return SmtpProbe(True, offered, error=getattr(exc, "verify_message", "") or str(exc))
    except (OSError, smtplib.SMTPException) as exc:
        return SmtpProbe(smtp is not None, offered, error=str(exc) or type(exc).__name__)
    finally:
        if smtp is not None:
            smtp.close()


def _tls_version(smtp: smtplib.SMTP) -> str:
    sock = smtp.sock
    return (sock.version() or "TLS") if isinstance(sock, ssl.SSLSocket) else ""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def probe_http(url: str, data: bytes | None = None, timeout: float = HTTP_TIMEOUT) -> HttpAnswer:
    """GET `url` (POST `data` as a form, if given), following no redirect."""
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpAnswer(url, response.status)
    except urllib.error.HTTPError as exc:
        return HttpAnswer(url, exc.code, exc.headers.get("Location", ""))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpAnswer(url, None, error=str(reason), tls_failed=isinstance(reason, ssl.SSLError))
