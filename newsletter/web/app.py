"""`newsletter serve`: sign-up with double opt-in, one-click unsubscribe, preferences, archive.

An ASGI app (Starlette) over the same SQLite store and signing key as the CLI. Every path is
below base_url's path (`/newsletter/...` for https://example.org/newsletter), and also answers
without it, for proxies that strip the prefix:

    GET  /subscribe              form (email, first name)          POST: pending + confirmation
    GET  /confirm/<token>        a button                          POST: active
    GET  /unsubscribe/<token>    masked address and a button       POST: unsubscribed
         (RFC 8058: a POST with body List-Unsubscribe=One-Click unsubscribes at once; a GET
          never changes anything, because link scanners follow GETs)
    POST /resubscribe/<token>    undo an unsubscribe from the same link
    GET  /preferences/<token>    topics, first name, unsubscribe   POST: save them
    GET  /r/<issue>/<token>      a counted click, then 302 to the link the token signs
    GET  /o/<issue>/<token>.gif  the open pixel (aggregate count; only if analytics.opens)
    POST /webhooks/<relay>       bounces and complaints from ses, postmark, mailgun, sendgrid
    GET  /healthz                for monitoring
    GET  /, /<slug>/             the static archive written by `newsletter archive`

The app's own forms carry a CSRF token (a signed nonce matched with a cookie). /subscribe also
takes posts from the origins in `web.embed_origins` (`newsletter embed`), checked by their
Origin or Referer header; for that public form the protection is double opt-in, a honeypot,
per-IP and per-address rate limits (kept in the database, so that they hold across uvicorn
worker processes: deliver/ratelimits.py) and the origin list. Sign-up answers before any work is
done, so neither its words nor its timing tell who is on the list. Database work runs in
threads; an unsubscribe that cannot be written while another process holds the write lock is
journaled (deliver/journal.py), answered 200 and applied as soon as possible. Only configured
host names are served, proxy headers are believed only from configured proxies, and bodies
are capped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from newsletter.analytics.bots import BurstDetector
from newsletter.analytics.bots import rules as bot_rules
from newsletter.analytics.clicks import Hit, record_click, record_open
from newsletter.analytics.links import CANARY, LinkSigner
from newsletter.compose.templates import make_environment, render
from newsletter.config import Config, load_config
from newsletter.deliver import db, ratelimits
from newsletter.deliver.feedback import feedback_for
from newsletter.deliver.journal import UnsubscribeJournal, journal_path
from newsletter.deliver.notices import confirmation_email
from newsletter.deliver.preferences import choices, save_preferences
from newsletter.deliver.sender import make_lanes
from newsletter.deliver.subscribers import (
    ImportRow,
    Status,
    Subscriber,
    SubscriberStore,
    normalize_email,
)
from newsletter.deliver.tokens import LinkOwner, Signer, signer_for
from newsletter.deliver.welcome import Welcomer, queue_welcome
from newsletter.errors import DatabaseError, NewsletterError, SubscriberError, TokenError
from newsletter.inbound.classify import Decision
from newsletter.inbound.webhooks import MAX_AGE, ReplayGuard, WebhookRefused
from newsletter.validation import parse_rate
from newsletter.web.hooks import RelayHooks
from newsletter.web.server import LOOPBACK_HOSTS

CSRF_COOKIE = "nl_csrf"
WEBHOOK_BODY_BYTES = 256 * 1024
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ONE_CLICK = "One-Click"
#: How often the journal of unsubscribes is looked at while there is one.
JOURNAL_INTERVAL = 1.0
_log = logging.getLogger("newsletter.web")
T = TypeVar("T")


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


def rate_limit(name: str, rate: str) -> ratelimits.Limit:
    """A configured rate ("10/h") as a limit counted over an hour, a minute or a second."""
    per_second = parse_rate(rate)
    seconds = 3600.0 if per_second < 1 / 60 else 60.0 if per_second < 1 else 1.0
    return ratelimits.Limit(name, max(1, round(per_second * seconds)), seconds)


class SharedReplays(ReplayGuard):
    """Relay call tokens (Mailgun's) seen by any worker process: each is a limit of one use
    in the database for as long as a call may be believed (twice MAX_AGE, the timestamp
    being allowed either side of now)."""

    def __init__(self, allow: Callable[[ratelimits.Limit, str], bool]) -> None:
        super().__init__()
        self.allow = allow
        self.limit = ratelimits.Limit("relay token", 1, 2.0 * MAX_AGE)

    def first_use(self, token: str) -> bool:
        """True the first time any worker sees `token`."""
        return self.allow(self.limit, token)


def mask(email: str) -> str:
    """`ad***@ex***.org`: enough for its owner to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    return f"{local[:2]}***@{host[:2]}***{dot}{tld}"


def request_origin(request: Request) -> str | None:
    """Where a post comes from: its Origin header, else its Referer's origin."""
    origin = request.headers.get("origin", "")
    if not origin or origin == "null":
        referer = urlsplit(request.headers.get("referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else ""
    return origin.lower() or None


def _locked(exc: Exception) -> bool:
    """The database stayed locked by another process for longer than we wait."""
    return isinstance(exc, DatabaseError) or (
        isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    )


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
        self.per_ip = rate_limit("ip", config.web.subscribe_per_ip)
        self.per_address = rate_limit("address", config.web.subscribe_per_address)
        self.limit_key = signer.subkey("rate limits")
        self.links = LinkSigner(signer.subkey("click"))
        self.opens = LinkSigner(signer.subkey("open"))
        self.bursts = BurstDetector(bot_rules())
        self.hooks = RelayHooks(config.inbound, clock, replays=SharedReplays(self.allow))
        self.journal = UnsubscribeJournal(journal_path(config))
        self.prefix = config.base_path
        self.embed_origins = frozenset(config.web.embed_origins)
        self._work: set[asyncio.Future[None]] = set()
        self.welcomer = Welcomer(config) if config.welcome.issue else None

    def store(self) -> SubscriberStore:
        """A connection to the subscriber store (one per unit of work, in a worker thread)."""
        path = self.config.database_location
        return SubscriberStore.open(path, self.config.web.lock_wait)

    async def in_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking database work off the event loop."""
        return await run_in_threadpool(work, *args)

    def allow(self, limit: ratelimits.Limit, value: str) -> bool:
        """Count one event against `limit` in the database, shared by every worker process;
        False if it is over."""
        with self.store() as store:
            return ratelimits.allow(store.conn, self.limit_key, limit, value, self.clock())

    # --- pages ----------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, status: int = 200, *, framable: bool = False,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        """Render a page; every page gets a fresh CSRF token bound to the visitor's cookie.

        Only the sign-up pages may be shown in a frame, and only by the embedding origins.
        """
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
        context |= {
            "config": self.config, "csrf": self.signer.sign("csrf", nonce), "prefix": self.prefix,
        }  # fmt: skip
        response = HTMLResponse(render(self.env, f"web/{template}", context), status)
        response.set_cookie(
            CSRF_COOKIE, nonce, httponly=True, samesite="strict", path=f"{self.prefix}/"
        )
        ancestors = " ".join(["'self'", *sorted(self.embed_origins)]) if framable else "'none'"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
            f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        )
        # tokens stay out of other sites' Referers; our own posts keep their Origin header
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
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

    def expired(self, request: Request) -> HTMLResponse:
        """The answer to a form whose CSRF token is missing or old."""
        return self.refuse(request, "The form expired; reload the page and try again.", 403)

    def refuse(self, request: Request, reason: str, status: int = 400) -> HTMLResponse:
        """A page saying why nothing was done."""
        return self.page(request, "problem.html.j2", status, reason=reason)

    def _find(self, owner: LinkOwner) -> Subscriber | None:
        with self.store() as store:
            return owner.find(store)

    async def _link_subscriber(self, request: Request) -> Subscriber | Response:
        """The subscriber an unsubscribe or preferences link names, or the page saying why not."""
        try:
            owner = self.signer.read_subscriber_token(request.path_params["token"])
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        if owner.is_test:
            return self.refuse(request, "This link is from a test copy: it names nobody.")
        subscriber = await self.in_thread(self._find, owner)
        if subscriber is None:
            return self.refuse(request, "This address is no longer on the list.", 404)
        return subscriber

    # --- unsubscribe, resubscribe, preferences -------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET: show the address (masked) and a button; never unsubscribes."""
        found = await self._link_subscriber(request)
        if isinstance(found, Response):
            return found
        return self.page(
            request,
            "unsubscribe.html.j2",
            masked=mask(found.email),
            token=request.path_params["token"],
            unsubscribed=found.status != Status.ACTIVE,
        )

    def _unsubscribe(self, token: str, owner: LinkOwner, source: str) -> Subscriber | None:
        """Unsubscribe now, or journal it if the database stays locked; never lose it."""
        try:
            with self.store() as store:
                subscriber = owner.find(store)
                if subscriber is not None and subscriber.status == Status.ACTIVE:
                    store.set_status(
                        subscriber.id, Status.UNSUBSCRIBED,
                        f"unsubscribe link in {owner.context}", source=source,
                        issue=owner.context,
                    )  # fmt: skip
                return subscriber
        except (sqlite3.OperationalError, DatabaseError) as exc:
            if not _locked(exc):
                raise
            self.journal.append(token, source)
            _log.warning("database locked: an unsubscribe was journaled, to be applied later")
            return None

    async def unsubscribe(self, request: Request) -> Response:
        """POST: RFC 8058 one-click (from mail providers) or the page's button."""
        token = request.path_params["token"]
        form = await request.form()
        if form.get("List-Unsubscribe") != ONE_CLICK:
            return self.refuse(request, "Nothing was changed: the request was incomplete.")
        try:
            owner = self.signer.read_subscriber_token(token)
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        if owner.is_test:
            return self.refuse(request, "This link is from a test copy: it names nobody.")
        from_page = self.csrf_ok(request, form)
        source = "web" if from_page else "one-click"
        subscriber = await self.in_thread(self._unsubscribe, token, owner, source)
        if not from_page:
            return PlainTextResponse("Unsubscribed.")
        return self.page(
            request, "unsubscribe.html.j2", masked=mask(subscriber.email) if subscriber else "",
            token=token, unsubscribed=True, just_now=True,
        )  # fmt: skip

    def _resubscribe(self, subscriber: Subscriber) -> None:
        with self.store() as store:
            reason = "resubscribed from the link"
            store.set_status(subscriber.id, Status.ACTIVE, reason, source="web")

    async def _form_of_link(self, request: Request) -> tuple[FormData, Subscriber] | Response:
        """A CSRF-checked form posted from a page of a subscriber's link, and that subscriber;
        or the page saying why nothing is done."""
        form = await request.form()
        if not self.csrf_ok(request, form):
            return self.expired(request)
        found = await self._link_subscriber(request)
        return found if isinstance(found, Response) else (form, found)

    async def resubscribe(self, request: Request) -> Response:
        """POST from the unsubscribe page: undo it."""
        posted = await self._form_of_link(request)
        if isinstance(posted, Response):
            return posted
        _, found = posted
        await self.in_thread(self._resubscribe, found)
        text = f"{mask(found.email)} will receive {self.config.name} again."
        return self.page(request, "done.html.j2", title="Welcome back", text=text)

    def _preferences_page(
        self, request: Request, subscriber: Subscriber, saved: list[str] | None = None
    ) -> Response:
        return self.page(
            request,
            "preferences.html.j2",
            masked=mask(subscriber.email),
            token=request.path_params["token"],
            subscriber=subscriber,
            choices=choices(self.config, subscriber),
            active=subscriber.status == Status.ACTIVE,
            saved=saved,
        )

    async def preferences_page(self, request: Request) -> Response:
        """GET: the reader's topics, first name and status; changes nothing."""
        found = await self._link_subscriber(request)
        if isinstance(found, Response):
            return found
        return self._preferences_page(request, found)

    def _save(self, subscriber: Subscriber, form: FormData) -> tuple[Subscriber, list[str]]:
        with self.store() as store:
            chosen = [str(value) for value in form.getlist("topic")]
            first_name = str(form.get("first_name", ""))
            changes = save_preferences(
                store, self.config, subscriber, chosen, first_name, source="preferences page"
            )
            updated = store.get_by_id(subscriber.id)
            assert updated is not None
            return updated, changes

    async def preferences(self, request: Request) -> Response:
        """POST: save the topics and the first name (CSRF-checked)."""
        posted = await self._form_of_link(request)
        if isinstance(posted, Response):
            return posted
        form, found = posted
        try:
            updated, changes = await self.in_thread(self._save, found, form)
        except SubscriberError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        return self._preferences_page(request, updated, saved=changes)

    # --- sign-up with double opt-in -------------------------------------------------------

    async def subscribe_page(self, request: Request) -> Response:
        """GET: the sign-up form (it may be framed by the embedding origins)."""
        return self.page(request, "subscribe.html.j2", framable=True)

    def _allowed_origin(self, request: Request) -> str | None:
        """The post's origin if it may sign people up without our CSRF token, else None."""
        origin = request_origin(request)
        own = {self.config.base_origin, f"{request.url.scheme}://{request.url.netloc}".lower()}
        return origin if origin in own | self.embed_origins else None

    def _signup_answer(
        self, request: Request, origin: str | None, status: int = 200, error: str | None = None
    ) -> Response:
        """The answer to a sign-up post: a page, or JSON for the embed script (with CORS)."""
        if "application/json" in request.headers.get("accept", ""):
            message = error or (
                f"Check your inbox: if the address can receive {self.config.name}, "
                "a link to confirm is on its way."
            )
            response: Response = JSONResponse({"ok": error is None, "message": message}, status)
        elif error is not None:
            response = self.page(request, "subscribe.html.j2", status, framable=True, error=error)
        else:
            response = self.page(request, "check-inbox.html.j2", status, framable=True)
        if origin in self.embed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    async def subscribe(self, request: Request) -> Response:
        """POST: answer at once ("check your inbox"), then store a pending subscriber and send
        the confirmation in the background: the answer and its timing reveal nothing."""
        form = await request.form()
        origin = self._allowed_origin(request)
        if origin is None and not self.csrf_ok(request, form):
            return self.expired(request)
        ip = request.client.host if request.client else "unknown"
        if not await self.in_thread(self.allow, self.per_ip, ip):
            return self._signup_answer(
                request, origin, 429, "Too many sign-ups from here; try again later."
            )
        if form.get("website"):  # the honeypot: people never see it, bots fill it in
            return self._signup_answer(request, origin)
        try:
            email = normalize_email(str(form.get("email", "")))
        except SubscriberError:
            return self._signup_answer(
                request, origin, 400, "That does not look like an email address."
            )
        first_name = " ".join(str(form.get("first_name", "")).split())[:100]
        self._later(self._register, email, first_name)
        return self._signup_answer(request, origin)

    def _later(self, work: Callable[..., None], *args: Any) -> None:
        """Run `work` in a thread after the answer; failures are logged (without addresses)."""

        async def run() -> None:
            try:
                await run_in_threadpool(work, *args)
            except Exception as exc:  # a sign-up lost to a broken database: the reader retries
                _log.error("sign-up failed: %s", type(exc).__name__)

        task = asyncio.ensure_future(run())
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def finish_work(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for background sign-ups to finish."""
        if self._work:
            await asyncio.wait(set(self._work), timeout=timeout)

    def _register(self, email: str, first_name: str) -> None:
        """Store a pending sign-up and send its confirmation (after the answer, so the
        per-address limit is checked here: refused or not, the answer is the same)."""
        if not self.allow(self.per_address, email):
            return
        with self.store() as store:
            existing = store.get(email)
            if existing is not None and existing.status == Status.ACTIVE:
                return
            if existing is None:
                row = ImportRow(0, email, first_name, "", (), {}, Status.PENDING)
                store.import_rows([row], source="web")
                existing = store.get(email)
                assert existing is not None
            version = len(store.history(existing.id))
        token = self.signer.confirm_token(existing.public_id, self.clock(), version)
        link = f"{self.config.base_url.rstrip('/')}/confirm/{token}"
        self.send_mail(email, confirmation_email(self.config, self.env, email, first_name, link))

    def _confirmable(self, token: str) -> tuple[Subscriber | None, str]:
        """The subscriber a confirmation link names and what it can do: 'confirm', 'already'
        (active), 'stale' (their status changed since the link was sent) or 'gone'."""
        max_age = self.config.web.confirm_days * 86400
        owner, version = self.signer.read_confirm(token, max_age, self.clock())
        with self.store() as store:
            subscriber = owner.find(store)
            if subscriber is None:
                return None, "gone"
            if subscriber.status == Status.ACTIVE:
                return subscriber, "already"
            if version is None:  # a first-format link: only a pending sign-up may use it
                fresh = subscriber.status == Status.PENDING
            else:
                fresh = version == len(store.history(subscriber.id))
            return subscriber, "confirm" if fresh else "stale"

    async def _confirm_state(self, request: Request) -> tuple[Subscriber, str] | Response:
        try:
            token = request.path_params["token"]
            subscriber, state = await self.in_thread(self._confirmable, token)
        except TokenError as exc:
            return self.refuse(request, str(exc.problems[0].message))
        if subscriber is None:
            return self.refuse(request, "This address is no longer on the list.", 404)
        if state == "stale":
            reason = (
                "This confirmation link is older than the latest change to your subscription, "
                "so it no longer applies."
            )
            return self.page(request, "problem.html.j2", 410, reason=reason, signup=True)
        return subscriber, state

    async def confirm_page(self, request: Request) -> Response:
        """GET: a button (link scanners must not confirm anyone)."""
        found = await self._confirm_state(request)
        if isinstance(found, Response):
            return found
        subscriber, state = found
        if state == "already":
            return self._subscribed(request, subscriber)
        return self.page(
            request, "confirm.html.j2", token=request.path_params["token"],
            masked=mask(subscriber.email),
        )  # fmt: skip

    def _activate(self, subscriber: Subscriber) -> None:
        with self.store() as store:
            store.set_status(subscriber.id, Status.ACTIVE, "confirmed by email", source="web")
        if self.welcomer is not None:  # sent from its own thread: the page never waits for it
            try:
                queue_welcome(self.config, subscriber.id)
            except Exception as exc:  # the confirmation stands; the welcome is logged as lost
                _log.error("welcome email not queued: %s", type(exc).__name__)
            self.welcomer.put(subscriber.id)

    async def confirm(self, request: Request) -> Response:
        """POST: the subscriber becomes active, unless the link is stale."""
        form = await request.form()
        if not self.csrf_ok(request, form):
            return self.expired(request)
        found = await self._confirm_state(request)
        if isinstance(found, Response):
            return found
        subscriber, state = found
        if state == "confirm":
            await self.in_thread(self._activate, subscriber)
        return self._subscribed(request, subscriber)

    def _subscribed(self, request: Request, subscriber: Subscriber) -> Response:
        return self.page(request, "subscribed.html.j2", masked=mask(subscriber.email))

    # --- health and the journal -----------------------------------------------------------

    def _count(self) -> int:
        with self.store() as store:
            return store.count()

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

    def _record(self, record: Callable[[db.Connection, Hit, BurstDetector], bool],
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
            await self.in_thread(self._count)
        except (NewsletterError, OSError, sqlite3.Error) as exc:
            return PlainTextResponse(f"database unavailable: {type(exc).__name__}", 503)
        return PlainTextResponse("ok")

    def _apply_journal(self) -> int:
        with self.store() as store:
            return self.journal.apply(store, self.signer)

    async def drain_journal(self) -> None:
        """Apply journaled unsubscribes whenever there are some and the database is free."""
        while True:
            if self.journal.pending():
                try:
                    applied = await self.in_thread(self._apply_journal)
                    _log.info("applied %d journaled unsubscribes", applied)
                except (sqlite3.OperationalError, DatabaseError):
                    pass  # still locked: next time
            await asyncio.sleep(JOURNAL_INTERVAL)


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


def allowed_hosts(config: Config) -> list[str]:
    """The host names `serve` answers: base_url's, the loopback names and `web.allowed_hosts`."""
    host = urlsplit(config.base_url).hostname or ""
    return sorted({host, *LOOPBACK_HOSTS, *config.web.allowed_hosts} - {""})


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

    routes: list[BaseRoute] = [
        route("/healthz", web.healthz, "GET"),
        route("/subscribe", web.subscribe_page, "GET"),
        route("/subscribe", web.subscribe, "POST"),
        route("/confirm/{token}", web.confirm_page, "GET"),
        route("/confirm/{token}", web.confirm, "POST"),
        route("/unsubscribe/{token}", web.unsubscribe_page, "GET"),
        route("/unsubscribe/{token}", web.unsubscribe, "POST"),
        route("/preferences/{token}", web.preferences_page, "GET"),
        route("/preferences/{token}", web.preferences, "POST"),
        route("/resubscribe/{token}", web.resubscribe, "POST"),
        route("/webhooks/{relay}", web.webhook, "POST"),
        route("/r/{issue}/{token}", web.click, "GET", "HEAD"),
        route("/o/{issue}/{token}.gif", web.open_pixel, "GET", "HEAD"),
        Mount("/", _Archive(config.path(config.web.site))),
    ]
    if web.prefix:
        home = RedirectResponse(f"{web.prefix}/", 308)
        routes = [Route(web.prefix, home), Mount(web.prefix, routes=routes), *routes]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        drain = asyncio.create_task(web.drain_journal())
        if web.welcomer is not None:
            web.welcomer.start()
        try:
            yield
        finally:
            drain.cancel()
            await web.finish_work(timeout=10)
            if web.welcomer is not None:
                await asyncio.to_thread(web.welcomer.close, 10)

    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(config)),
        Middleware(BodyLimit, limit=config.web.max_body_bytes),
    ]
    if config.web.trusted_proxies:
        proxies = Middleware(ProxyHeadersMiddleware, trusted_hosts=config.web.trusted_proxies)
        middleware.insert(0, proxies)

    async def busy(request: Request, exc: Exception) -> Response:
        if not _locked(exc):
            raise exc
        return web.refuse(request, "The list is busy; try again in a minute.", 503)

    handlers = {sqlite3.OperationalError: busy, DatabaseError: busy}
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers
    )
    return app
