"""Verdicts on what the network probes saw: each SMTP relay's TLS and the web endpoints that
the links in every email point at (`base_url` and its one-click unsubscribe)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.config import SmtpServer
from newsletter.doctor.results import CheckResult, failed, passed, warned

WEB_NAME = "HTTPS base_url"
UNSUBSCRIBE_NAME = "unsubscribe endpoint"


@dataclass(frozen=True)
class SmtpProbe:
    """What an SMTP relay said: `error` is why the conversation stopped, if it did."""

    connected: bool
    starttls_offered: bool = False
    tls_version: str = ""
    error: str = ""


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP response's status (None when there was none) and Location, or the error;
    `tls_failed` when that error was the TLS handshake (an untrusted certificate...)."""

    url: str
    status: int | None
    location: str = ""
    error: str = ""
    tls_failed: bool = False


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (localhost or a loopback address)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_verdict(server: SmtpServer, probe: SmtpProbe) -> CheckResult:
    """Judge one relay: it must speak TLS the way `security` says."""
    name = f"TLS relay {server.name}"
    where = f"{server.host}:{server.port}"
    if not probe.connected:
        hint = ' (port 465 expects security = "tls")' if server.port == 465 else ""
        return failed(
            name,
            f"no SMTP conversation with {where}: {probe.error}{hint}",
            "check host, port and security in [[smtp]], and that the relay lets "
            "this machine connect",
        )
    if probe.tls_version:
        how = "implicit TLS" if server.security == "tls" else "STARTTLS"
        if server.security == "none":
            return warned(
                name,
                f"{where} offers STARTTLS ({probe.tls_version}) but security "
                '= "none" sends in the clear',
                'set security = "starttls"',
            )
        return passed(name, f"{where} speaks {how} ({probe.tls_version}, certificate valid)")
    if probe.error:
        return failed(
            name,
            f"{where}: TLS failed: {probe.error}",
            "fix the relay's certificate, or the host name so it matches it",
        )
    if server.security == "starttls":
        return failed(
            name,
            f'{where} offers no STARTTLS, which security = "starttls" needs: send would stop',
            'use the relay\'s TLS port (587 STARTTLS, or 465 with security = "tls")',
        )
    if is_loopback(server.host):
        return warned(
            name,
            f"{where} offers no TLS; tolerable only for a relay on this machine",
            "use a relay that offers STARTTLS before sending for real",
        )
    return failed(
        name,
        f"{where} offers no STARTTLS: mail and password would cross the network in the clear",
        'use the relay\'s TLS port (587 STARTTLS, or 465 with security = "tls")',
    )


def web_verdict(base_url: str, answer: HttpAnswer) -> CheckResult:
    """`base_url` must answer, over https (one-click unsubscribe needs an https link)."""
    parts = urlsplit(base_url)
    if answer.tls_failed:
        return failed(
            WEB_NAME,
            f"{base_url}: TLS failed: {answer.error}",
            "give the site a certificate that browsers trust, for its exact host name",
        )
    if answer.status is None:
        return failed(
            WEB_NAME,
            f"{base_url} does not answer: {answer.error}",
            "run `newsletter serve` (or your web server) where base_url points",
        )
    if answer.status >= 500:
        return failed(
            WEB_NAME, f"{base_url} answers {answer.status}", "look at the web server's log"
        )
    if parts.scheme == "https":
        return passed(WEB_NAME, f"{base_url} answers over https ({answer.status})")
    if is_loopback(parts.hostname or ""):
        return warned(
            WEB_NAME,
            f"{base_url} is plain http on this machine: readers cannot reach it",
            "set base_url to the public https address before sending",
        )
    return failed(
        WEB_NAME,
        f"{base_url} is plain http: unsubscribe links are not https, "
        "which Gmail and Yahoo require for one-click unsubscribe",
        "serve the site over https and set base_url to the https address",
    )


def unsubscribe_verdict(get: HttpAnswer, post: HttpAnswer) -> CheckResult:
    """A GET (the page) and a one-click POST with a made-up token must reach the handler,
    which refuses the token: anything but 404/405, a redirect or a server error."""
    problems = []
    for method, answer in (("GET", get), ("one-click POST", post)):
        if answer.status is None:
            problems.append(f"{method} got no answer ({answer.error})")
        elif answer.status in (404, 405) or answer.status >= 500:
            problems.append(f"{method} answers {answer.status}")
        elif 300 <= answer.status < 400:
            problems.append(f"{method} is redirected to {answer.location or '?'}")
    if problems:
        return failed(
            UNSUBSCRIBE_NAME,
            f"{get.url}: " + "; ".join(problems),
            "serve `newsletter serve` at base_url itself (no redirect), so "
            "/unsubscribe/<token> reaches it",
        )
    return passed(
        UNSUBSCRIBE_NAME,
        f"{get.url} reaches the unsubscribe handler (GET "
        f"{get.status}, one-click POST {post.status} for a made-up token)",
    )
