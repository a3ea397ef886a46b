"""`newsletter serve`: sign-up with double opt-in, one-click unsubscribe, and the archive.

An ASGI app (Starlette) over the same SQLite store and signing key as the CLI:

    GET  /subscribe              form (email, first name)          POST: pending + confirmation
    GET  /confirm/<token>        a button                          POST: active
    GET  /unsubscribe/<token>    masked address and a button       POST: unsubscribed
         (RFC 8058: a POST with body List-Unsubscribe=One-Click unsubscribes at once; a GET
          never changes anything, because link scanners follow GETs)
    POST /resubscribe/<token>    undo an unsubscribe from the same link
    GET  /preferences/<token>    the subscription's state and what can be done
    GET  /r/<issue>/<token>      a counted click, then 302 to the link the token signs
    GET  /o/<issue>/<token>.gif  the open pixel (aggregate count; only if analytics.opens)
    POST /webhooks/<relay>       bounces and complaints from ses, postmark, mailgun, sendgrid
    GET  /healthz                for monitoring
    GET  /, /<slug>/             the static archive written by `newsletter archive`

Forms carry a CSRF token (a signed nonce matched with a cookie); /subscribe has a honeypot
field and per-IP and per-address rate limits; request bodies are capped; pages never echo raw
input, and answers to /subscribe reveal nothing about who is on the list.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.analytics.bots import BurstDetector
from newsletter.analytics.bots import rules as bot_rules
from newsletter.analytics.clicks import Hit, record_click, record_open
from newsletter.analytics.links import CANARY, LinkSigner
from newsletter.compose.templates import make_environment, render
from newsletter.config import Config, load_config
from newsletter.deliver.feedback import feedback_for
from newsletter.deliver.notices import confirmation_email
from newsletter.deliver.sender import make_lanes
from newsletter.deliver.subscribers import (
    ImportRow,
    Status,
    SubscriberError,
    SubscriberStore,
    normalize_email,
)
from newsletter.deliver.tokens import Signer, TokenError, signer_for
from newsletter.errors import NewsletterError
from newsletter.inbound.classify import Decision
from newsletter.inbound.webhooks import WebhookRefused
from newsletter.validation import parse_rate
from newsletter.web.hooks import RelayHooks

CSRF_COOKIE = "nl_csrf"
WEBHOOK_BODY_BYTES = 256 * 1024
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ONE_CLICK = "One-Click"


class BodyLimit:
    """ASGI middleware: requests with a body larger than `limit` bytes get 413 (relay
    webhooks, under /webhooks/, may send up to WEBHOOK_BODY_BYTES)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = WEBHOOK_BODY_BYTES if scope["path"].startswith("/webhooks/") else self.limit
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            await PlainTextResponse("Request too large", 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await PlainTextResponse("Request too large", 413)(scope, receive, send)


class _TooLarge(Exception):
    pass


class RateLimit:
    """At most `count` events per `seconds` for each key (in this process's memory)."""

    def __init__(self, rate: str, clock: Callable[[], float]) -> None:
        per_second = parse_rate(rate)
        self.seconds = 3600.0 if per_second < 1 / 60 else 60.0 if per_second < 1 else 1.0
        self.count = max(1, round(per_second * self.seconds))
        self.clock = clock
        self.events: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        """Record an event for `key`; False if it is over the limit."""
        now = self.clock()
        events = self.events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.count:
            return False
        events.append(now)
        return True


def mask(email: str) -> str:
    """`ad***@ex***.org`: enough for its owner to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    return f"{local[:2]}***@{host[:2]}***{dot}{tld}"


class WebApp:
    """The request handlers, over one config, store and key."""

    def __init__(
        self,
        config: Config,
        signer: Signer,
        send_mail: Callable[[str, bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.signer = signer
        self.send_mail = send_mail
        self.clock = clock
        self.env = make_environment(config.root)
        self.per_ip = RateLimit(config.web.subscribe_per_ip, clock)
        self.per_address = RateLimit(config.web.subscribe_per_address, clock)
        self.links = LinkSigner(signer.subkey("click"))
        self.opens = LinkSigner(signer.subkey("open"))
        self.bursts = BurstDetector(bot_rules())
        self.hooks = RelayHooks(config.inbound, clock)

    def store(self) -> SubscriberStore:
        """A connection to the subscriber store for one request."""
        return SubscriberStore.open(self.config.path(self.config.database))

    def page(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render a page; every page gets a fresh CSRF token bound to the visitor's cookie."""
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
        context |= {"config": self.config, "csrf": self.signer.sign("csrf", nonce)}
        response = HTMLResponse(render(self.env, f"web/{template}", context), status)
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict")
        return response

    def csrf_ok(self, request: Request, form: Mapping[str, Any]) -> bool:
        """The form's token is ours and matches the visitor's cookie."""
        cookie = request.cookies.get(CSRF_COOKIE)
        try:
            return bool(cookie) and self.signer.verify("csrf", str(form.get("csrf", ""))) == [
                cookie
            ]
        except TokenError:
            return False

    def refuse(self, request: Request, reason: str, status: int = 400) -> HTMLResponse:
        """A page saying why nothing was done."""
        return self.page(request, "problem.html.j2", status, reason=reason)

    # --- unsubscribe, resubscribe, preferences -------------------------------------------

    def _subscriber_of(self, token: str) -> tuple[SubscriberStore, Any, str]:
        email, issue = self.signer.verify("unsubscribe", token)
        store = self.store()
        return store, store.get(email), issue

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET: show the address (masked) and a button; never unsubscribes."""
        token = request.path_params["token"]
        try:
            _, subscriber, _ = self._subscriber_of(token)
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        if subscriber is None:
            return self.refuse(request, "This address is no longer on the list.", 404)
        return self.page(
            request,
            "unsubscribe.html.j2",
            masked=mask(subscriber.email),
            token=token,
            unsubscribed=subscriber.status != Status.ACTIVE,
        )

    async def unsubscribe(self, request: Request) -> Response:
        """POST: RFC 8058 one-click (from mail providers) or the page's button."""
        token = request.path_params["token"]
        form = await request.form()
        if form.get("List-Unsubscribe") != ONE_CLICK:
            return self.refuse(request, "Nothing was changed: the request was incomplete.")
        try:
            store, subscriber, issue = self._subscriber_of(token)
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        from_page = self.csrf_ok(request, form)
        if subscriber is not None and subscriber.status == Status.ACTIVE:
            source = "web" if from_page else "one-click"
            store.set_status(
                subscriber.id, Status.UNSUBSCRIBED, "unsubscribe link", source=source, issue=issue
            )
        if not from_page:
            return PlainTextResponse("Unsubscribed.")
        return self.page(
            request, "unsubscribe.html.j2", masked=mask(subscriber.email) if subscriber else "",
            token=token, unsubscribed=True, just_now=True,
        )  # fmt: skip

    async def _activate(
        self, request: Request, email_of: Callable[[str], str], reason: str, title: str,
        message: str,
    ) -> Response:  # fmt: skip
        """A form POST that makes the token's subscriber active again (CSRF-checked)."""
        form = await request.form()
        if not self.csrf_ok(request, form):
            return self.refuse(request, "The form expired; reload the page and try again.", 403)
        try:
            email = email_of(request.path_params["token"])
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        store = self.store()
        subscriber = store.get(email)
        if subscriber is None:
            return self.refuse(request, "This address is no longer on the list.", 404)
        store.set_status(subscriber.id, Status.ACTIVE, reason, source="web")
        text = message.format(address=mask(subscriber.email), name=self.config.name)
        return self.page(request, "done.html.j2", title=title, text=text)

    async def resubscribe(self, request: Request) -> Response:
        """POST from the unsubscribe page: undo it."""
        return await self._activate(
            request,
            lambda token: self.signer.verify("unsubscribe", token)[0],
            "resubscribed from the link",
            "Welcome back",
            "{address} will receive {name} again.",
        )

    # --- sign-up with double opt-in -------------------------------------------------------

    async def subscribe_page(self, request: Request) -> Response:
        """GET: the sign-up form."""
        return self.page(request, "subscribe.html.j2")

    async def subscribe(self, request: Request) -> Response:
        """POST: store a pending subscriber and send the confirmation; reveal nothing."""
        form = await request.form()
        if not self.csrf_ok(request, form):
            return self.refuse(request, "The form expired; reload the page and try again.", 403)
        ip = request.client.host if request.client else "unknown"
        if not self.per_ip.allow(ip):
            return self.refuse(request, "Too many sign-ups from here; try again later.", 429)
        if form.get("website"):  # the honeypot: people never see it, bots fill it in
            return self.page(request, "check-inbox.html.j2")
        try:
            email = normalize_email(str(form.get("email", "")))
        except SubscriberError:
            return self.page(request, "subscribe.html.j2", 400,
                             error="That does not look like an email address.")  # fmt: skip
        first_name = " ".join(str(form.get("first_name", "")).split())[:100]
        if self.per_address.allow(email):
            await asyncio.to_thread(self._register, email, first_name)
        return self.page(request, "check-inbox.html.j2")

    def _register(self, email: str, first_name: str) -> None:
        store = self.store()
        existing = store.get(email)
        if existing is not None and existing.status == Status.ACTIVE:
            return
        if existing is None:
            row = ImportRow(0, email, first_name, "", (), {}, Status.PENDING)
            store.import_rows([row], source="web")
        token = self.signer.timed_token("confirm", email, self.clock())
        link = f"{self.config.base_url.rstrip('/')}/confirm/{token}"
        self.send_mail(email, confirmation_email(self.config, email, first_name, link))

    def _confirm_email(self, token: str) -> str:
        max_age = self.config.web.confirm_days * 86400
        return self.signer.verify_timed("confirm", token, max_age, self.clock())

    async def confirm_page(self, request: Request) -> Response:
        """GET: a button (link scanners must not confirm anyone)."""
        token = request.path_params["token"]
        try:
            email = self._confirm_email(token)
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        return self.page(request, "confirm.html.j2", token=token, masked=mask(email))

    async def confirm(self, request: Request) -> Response:
        """POST: the subscriber becomes active."""
        return await self._activate(
            request,
            self._confirm_email,
            "confirmed by email",
            "You're subscribed",
            "{address} will receive {name}. Thank you!",
        )

    # --- privacy-first counts (analytics.clicks / analytics.opens) -------------------------

    async def click(self, request: Request) -> Response:
        """A signed click redirect: count it (a person's or a scanner's), then 302 onwards."""
        issue, token = request.path_params["issue"], request.path_params["token"]
        url = self.links.verify(issue, token)
        if url is None or not self.config.analytics.clicks:
            return PlainTextResponse("Unknown link.", 400)
        hit = Hit(
            issue, url, request.method, request.headers.get("user-agent", ""),
            request.client.host if request.client else "", self.clock(),
        )  # fmt: skip
        await asyncio.to_thread(self._record, record_click, hit)
        if url.startswith(CANARY):
            return PlainTextResponse("", 204)
        return RedirectResponse(url, 302, headers={"Cache-Control": "no-store"})

    async def open_pixel(self, request: Request) -> Response:
        """The open pixel: an aggregate count per issue, then a transparent GIF."""
        issue, token = request.path_params["issue"], request.path_params["token"]
        if not self.config.analytics.opens or self.opens.verify(issue, token) != "open":
            return PlainTextResponse("Unknown image.", 400)
        if request.method == "GET":
            await asyncio.to_thread(self._count_open, issue)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    def _record(self, record: Callable[[sqlite3.Connection, Hit, BurstDetector], bool],
                hit: Hit) -> None:  # fmt: skip
        with self.store() as store:
            record(store.conn, hit, self.bursts)

    def _count_open(self, issue: str) -> None:
        with self.store() as store:
            record_open(store.conn, issue, self.clock())

    # --- relay webhooks: what comes back ----------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """A relay's bounce/complaint call: authenticated as the relay documents, then
        applied like a bounce message. A forged call is refused and changes nothing."""
        relay, body = request.path_params["relay"], await request.body()
        try:
            decisions = await asyncio.to_thread(self.hooks.verify, relay, body, request.headers)
        except WebhookRefused as exc:
            return PlainTextResponse(f"Refused: {exc}", 403)
        except LookupError:
            return PlainTextResponse("Unknown relay.", 404)
        await asyncio.to_thread(self._apply, relay, decisions, body)
        return PlainTextResponse("ok")

    def _apply(self, relay: str, decisions: list[Decision], body: bytes) -> None:
        with self.store() as store:
            feedback = feedback_for(store, self.config, self.signer)
            for decision in decisions:
                feedback.apply(decision, source=f"webhook:{relay}", raw=body)

    async def healthz(self, request: Request) -> Response:
        """Liveness and the database's reachability."""
        try:
            self.store().count()
        except (NewsletterError, OSError) as exc:
            return PlainTextResponse(f"database unavailable: {type(exc).__name__}", 503)
        return PlainTextResponse("ok")


class _Archive:
    """The static archive, or a 404 that says how to make it while there is none."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.files = StaticFiles(directory=site, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.site.is_dir():
            await self.files(scope, receive, send)
        else:
            missing = PlainTextResponse("No archive yet: run 'newsletter archive'.", 404)
            await missing(scope, receive, send)


def outbox_mailer(config: Config) -> Callable[[str, bytes], None]:
    """Send one message through the configured transport (the outbox by default)."""

    def send(to: str, data: bytes) -> None:
        lane = make_lanes(config, config.sending.transport, "notices", connections=1)[0]
        lane.transport.open()
        try:
            lane.transport.send(config.sender.address, to, data, lambda: None)
        finally:
            lane.transport.close()

    return send


def app_from_environment() -> Starlette:
    """For ASGI servers (`uvicorn --factory newsletter.web.app:app_from_environment`): the app for
    the newsletter.toml found from the working directory (or $NEWSLETTER_CONFIG)."""
    config_path = os.environ.get("NEWSLETTER_CONFIG")
    config = load_config(Path(config_path) if config_path else None)
    return create_app(config, signer_for(config))


def create_app(
    config: Config,
    signer: Signer,
    send_mail: Callable[[str, bytes], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The whole site: the handlers above, then the archive as static files."""
    web = WebApp(config, signer, send_mail or outbox_mailer(config), clock)

    def route(
        path: str, endpoint: Callable[[Request], Awaitable[Response]], *methods: str
    ) -> Route:
        return Route(path, endpoint, methods=list(methods))

    site = config.path(config.web.site)
    return Starlette(
        routes=[
            route("/healthz", web.healthz, "GET"),
            route("/subscribe", web.subscribe_page, "GET"),
            route("/subscribe", web.subscribe, "POST"),
            route("/confirm/{token}", web.confirm_page, "GET"),
            route("/confirm/{token}", web.confirm, "POST"),
            route("/unsubscribe/{token}", web.unsubscribe_page, "GET"),
            route("/unsubscribe/{token}", web.unsubscribe, "POST"),
            route("/preferences/{token}", web.unsubscribe_page, "GET"),
            route("/resubscribe/{token}", web.resubscribe, "POST"),
            route("/webhooks/{relay}", web.webhook, "POST"),
            route("/r/{issue}/{token}", web.click, "GET", "HEAD"),
            route("/o/{issue}/{token}.gif", web.open_pixel, "GET", "HEAD"),
            Mount("/", _Archive(site)),
        ],
        middleware=[Middleware(BodyLimit, limit=config.web.max_body_bytes)],
    )
