"""`newsletter preview`: a local page showing the issue as subscribers will see it.

The page shows the subject and preheader as an inbox lists them, the email at desktop (650 px)
and phone (375 px) width side by side, the plain-text twin and the check findings. A watcher
rebuilds whenever a file of the issue, a template or the config changes, and tells the page
over Server-Sent Events to reload; a build error is shown on the page instead of the email.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from watchfiles import awatch

from newsletter.checks import run_check
from newsletter.compose.build import BuiltIssue, build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.mergetags import fill
from newsletter.compose.templates import default_templates, make_environment, render
from newsletter.config import CONFIG_NAME, Config, load_config
from newsletter.deliver import db
from newsletter.deliver.message import Recipient, copy_values
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, signer_for
from newsletter.errors import NewsletterError
from newsletter.web.server import LOOPBACK_HOSTS

SAMPLE = Recipient("alex@example.com", "Alex", "Example")


@dataclass
class Snapshot:
    """The latest build: what the page shows. `error` is set instead when it failed."""

    version: int = 0
    built: BuiltIssue | None = None
    config: Config | None = None
    signer: Signer | None = None
    error: str | None = None
    findings: list[dict[str, str]] = field(default_factory=list)


class PreviewSession:
    """Builds the issue on demand and answers the page's questions about it."""

    def __init__(self, issue_dir: Path, config_path: Path | None = None) -> None:
        self.issue_dir = issue_dir.resolve()
        self.config_path = config_path
        self.snapshot = Snapshot()

    def rebuild(self) -> Snapshot:
        """Build again; on failure keep the error to show it."""
        version = self.snapshot.version + 1
        try:
            config = load_config(self.config_path, start=self.issue_dir)
            built = build_issue(load_issue(self.issue_dir), config)
            report = run_check(self.issue_dir, config)
            findings = [
                {"level": f.level, "code": f.code, "message": f.message, "where": f.where,
                 "fix": f.fix}
                for f in report.findings
            ]  # fmt: skip
            signer = signer_for(config)
            self.snapshot = Snapshot(version, built, config, signer, None, findings)
        except NewsletterError as exc:
            self.snapshot = Snapshot(version, None, self.snapshot.config, None, str(exc))
        return self.snapshot

    def watched(self) -> list[Path]:
        """The issue folder, the template folders and the config file."""
        config = self.snapshot.config
        paths = [self.issue_dir, default_templates()]
        if config is not None:
            paths += [config.root / "templates", config.root / CONFIG_NAME]
        return [path for path in dict.fromkeys(paths) if path.exists()]

    def _store(self) -> SubscriberStore | None:
        config = self.snapshot.config
        if config is None or not db.exists(config.database_location):
            return None
        return SubscriberStore.open(config.database_location)

    def subscribers(self, limit: int = 50) -> list[dict[str, Any]]:
        """Active subscribers to pick from (the first `limit`)."""
        store = self._store()
        if store is None:
            return []
        people = []
        for subscriber in store.iter(Status.ACTIVE):
            people.append({"id": subscriber.id, "label": f"{subscriber.name} <{subscriber.email}>"})
            if len(people) == limit:
                break
        return people

    def recipient(self, subscriber_id: int | None) -> Recipient:
        """The chosen subscriber, or the sample reader."""
        store = self._store() if subscriber_id else None
        found = store.get_by_id(subscriber_id) if store and subscriber_id else None
        if found is None:
            return SAMPLE
        return Recipient(found.email, found.first_name, found.last_name, found.id, found.public_id)

    def values(self, subscriber_id: int | None) -> dict[str, str]:
        """Merge-tag values for the chosen subscriber."""
        snap = self.snapshot
        assert snap.built is not None and snap.config is not None and snap.signer is not None
        recipient = self.recipient(subscriber_id)
        token = snap.signer.subscriber_token(recipient.public_id, snap.built.slug)
        return copy_values(recipient, token, snap.config.base_url, snap.built.web_url)

    def subject(self, subscriber_id: int | None) -> str:
        """The subject line as the chosen subscriber's inbox shows it."""
        assert self.snapshot.built is not None
        return fill(self.snapshot.built.subject, self.values(subscriber_id))

    def html(self, subscriber_id: int | None) -> str:
        """The email filled for the chosen subscriber, images served by this server."""
        built = self.snapshot.built
        assert built is not None
        filled = fill(built.html, self.values(subscriber_id), is_html=True)
        return filled.replace(f"{built.web_url}images/", "/images/")

    def text(self, subscriber_id: int | None) -> str:
        """The plain-text twin filled for the chosen subscriber."""
        assert self.snapshot.built is not None
        return fill(self.snapshot.built.text, self.values(subscriber_id))

    def image(self, path: str) -> Path | None:
        """The local file behind `/images/<path>`."""
        built = self.snapshot.built
        assets = built.assets if built else ()
        return next((a.file for a in assets if a.dest == f"images/{path}" and a.file), None)


def listening_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to host:port or, when another program holds that port, to a free one
    (read it back with `getsockname`). Binding it here, before anything is printed, means the
    address announced is the one served."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        raise NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _subscriber(request: Request) -> int | None:
    value = request.query_params.get("s", "")
    return int(value) if value.isdigit() else None


def create_app(session: PreviewSession) -> Starlette:
    """The preview web app over one session; it watches and rebuilds while it runs."""
    changed = asyncio.Condition()
    page_env = make_environment(None)

    async def page(request: Request) -> Response:
        context = {"slug": session.issue_dir.name}
        return HTMLResponse(render(page_env, "preview/page.html.j2", context))

    async def state(request: Request) -> Response:
        snap, who = session.snapshot, _subscriber(request)
        body: dict[str, Any] = {"version": snap.version, "error": snap.error}
        if snap.built is not None:
            body |= {
                "subject": session.subject(who),
                "preheader": snap.built.preheader,
                "sender": snap.config.sender.name if snap.config else "",
                "findings": snap.findings,
                "html_kb": round(snap.built.html_bytes / 1024, 1),
                "subscribers": session.subscribers(),
            }
        return JSONResponse(body)

    async def email(request: Request) -> Response:
        if session.snapshot.built is None:
            return HTMLResponse("<p>The issue does not build; see the error above.</p>", 503)
        return HTMLResponse(session.html(_subscriber(request)))

    async def text(request: Request) -> Response:
        if session.snapshot.built is None:
            return PlainTextResponse("", 503)
        return PlainTextResponse(session.text(_subscriber(request)))

    async def image(request: Request) -> Response:
        file = session.image(request.path_params["path"])
        return FileResponse(file) if file else PlainTextResponse("not found", 404)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = -1
            while not await request.is_disconnected():
                if session.snapshot.version != seen:
                    seen = session.snapshot.version
                    yield f"data: {json.dumps({'version': seen})}\n\n"
                async with changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), timeout=15)
                yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def watch(stop: asyncio.Event) -> None:
        async for _ in awatch(*session.watched(), stop_event=stop, debounce=200):
            await asyncio.to_thread(session.rebuild)
            async with changed:
                changed.notify_all()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(session.rebuild)
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        yield
        stop.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    return Starlette(
        routes=[
            Route("/", page),
            Route("/state.json", state),
            Route("/email.html", email),
            Route("/email.txt", text),
            Route("/images/{path:path}", image),
            Route("/events", events),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))],
        lifespan=lifespan,
    )
