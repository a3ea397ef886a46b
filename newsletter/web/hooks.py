"""The relay webhooks' I/O: secrets from the environment, SNS certificates fetched (and
cached) over https, subscription confirmations visited; the checks are in `inbound.webhooks`."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from newsletter.config import Inbound
from newsletter.inbound import webhooks
from newsletter.inbound.classify import Decision
from newsletter.inbound.webhooks import ReplayGuard, WebhookRefused

TIMEOUT = 10.0


def _get(url: str) -> bytes:
    """GET an SNS URL (https on an SNS host, checked by the caller) within TIMEOUT."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
        return bytes(answer.read(65536))


class RelayHooks:
    """Verifies each relay's calls with the secret its config names."""

    def __init__(
        self,
        settings: Inbound,
        clock: Callable[[], float],
        fetch: Callable[[str], bytes] = _get,
        replays: ReplayGuard | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.fetch = fetch
        self.replays = replays or ReplayGuard()
        self._certs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _secret(self, variable: str, relay: str) -> str:
        value = os.environ.get(variable, "")
        if not value:
            raise WebhookRefused(f"{relay} webhooks are off: ${variable} is not set")
        return value

    def _cert(self, url: str) -> bytes:
        with self._lock:
            if url not in self._certs:
                self._certs[url] = self.fetch(url)
            return self._certs[url]

    def _confirm(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme != "https" or not webhooks.sns_host(host):
            raise WebhookRefused("the subscription URL is not on an SNS host")
        self.fetch(url)

    def verify(self, relay: str, body: bytes, headers: Mapping[str, str]) -> list[Decision]:
        """The decisions of one genuine call; WebhookRefused otherwise, LookupError for an
        unknown relay."""
        s = self.settings
        if relay == "ses":
            if not s.ses_topics:
                raise WebhookRefused("SES webhooks are off: set inbound.ses_topics")
            return webhooks.ses(body, topics=frozenset(s.ses_topics), fetch=self._cert,
                                confirm=self._confirm)  # fmt: skip
        if relay == "postmark":
            password = self._secret(s.postmark_password_env, "Postmark")
            return webhooks.postmark(body, headers.get("authorization", ""),
                                     username=s.postmark_username, password=password)  # fmt: skip
        if relay == "mailgun":
            key = self._secret(s.mailgun_signing_key_env, "Mailgun")
            return webhooks.mailgun(body, signing_key=key, now=self.clock(), replays=self.replays)
        if relay == "sendgrid":
            key = self._secret(s.sendgrid_public_key_env, "SendGrid")
            return webhooks.sendgrid(
                body,
                headers.get("x-twilio-email-event-webhook-signature", ""),
                headers.get("x-twilio-email-event-webhook-timestamp", ""),
                public_key=key,
                now=self.clock(),
            )
        raise LookupError(relay)
