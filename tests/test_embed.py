"""Sign-up from the newsroom's own site: `newsletter embed`, served from a second loopback
origin (127.0.0.2), signs readers up through double opt-in in a real browser; posts from
origins not on the list are refused; the hosted form works in an allowed site's iframe."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from outbox_notices import notices
from smtp_sink import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from typer.testing import CliRunner
from web_server import serving

from newsletter.browser import chromium, find_chromium
from newsletter.cli.app import app
from newsletter.config import Config, load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import signer_for
from newsletter.web.app import create_app

pytestmark = pytest.mark.usefixtures("each_database")

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


class Newsroom:
    """The newsletter's app on 127.0.0.1 and a newsroom site on 127.0.0.2 (allowed) and
    127.0.0.3 (not allowed) serving the pages in `pages`."""

    def __init__(self, config: Config, site: str, allowed: str, other: str) -> None:
        self.config, self.site, self.allowed, self.other = config, site, allowed, other
        self.pages: dict[str, str] = {}
        self.store = SubscriberStore.open(config.database_location)

    def app(self) -> Starlette:
        async def page(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            return HTMLResponse(
                self.pages.get(name, "not here"), 200 if name in self.pages else 404
            )

        return Starlette(routes=[Route("/{name}", page)])

    def confirmations(self, count: int = 1) -> list[str]:
        return notices(self.config, count)


def page_with(body: str) -> str:
    return f"<!doctype html><html lang=en><meta charset=utf-8><title>Newsroom</title>{body}</html>"


@pytest.fixture
def newsroom(project: Path, runner: CliRunner) -> Iterator[Newsroom]:
    app_port, site_port = free_port(), free_port()
    site, allowed = f"http://127.0.0.1:{app_port}", f"http://127.0.0.2:{site_port}"
    toml = project / "newsletter.toml"
    text = toml.read_text().replace('"https://news.example.org"', f'"{site}"')
    toml.write_text(text + f'\n[web]\nembed_origins = ["{allowed}"]\n')
    config = load_config()
    with ExitStack() as stack:
        room = Newsroom(config, site, allowed, f"http://127.0.0.3:{site_port}")
        stack.enter_context(serving(create_app(config, signer_for(config)), port=app_port))
        stack.enter_context(serving(room.app(), host="127.0.0.2", port=site_port))
        stack.enter_context(serving(room.app(), host="127.0.0.3", port=site_port))
        yield room


def snippet(runner: CliRunner, *options: str) -> str:
    result = runner.invoke(app, ["embed", *options])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def confirm_in(page: object, room: Newsroom, text: str) -> None:
    link = re.search(rf"{re.escape(room.site)}/confirm/\S+", text)[0]
    page.goto(link)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.locator("h1", has_text="You're subscribed").wait_for()  # type: ignore[attr-defined]


def test_the_snippet_is_a_plain_form_with_an_optional_script(
    newsroom: Newsroom, runner: CliRunner
) -> None:
    with_script, plain = snippet(runner), snippet(runner, "--no-script")
    assert f'action="{newsroom.site}/subscribe"' in plain and "<script" not in plain
    assert 'name="website"' in plain and 'name="csrf"' not in plain
    assert "<script>" in with_script and "fetch(form.action" in with_script


def test_origins_not_on_the_list_are_refused(newsroom: Newsroom) -> None:
    data = {"email": "eve@example.org"}

    def post(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{newsroom.site}/subscribe", data=data, headers=headers)

    assert post({"Origin": newsroom.other}).status_code == 403
    assert post({"Origin": "https://news.example.org.attacker.example"}).status_code == 403
    assert post({"Origin": "null"}).status_code == 403
    assert post({}).status_code == 403
    assert post({"Referer": f"{newsroom.other}/signup"}).status_code == 403
    accepted = post({"Origin": newsroom.allowed, "Accept": "application/json"})
    assert accepted.status_code == 200 and accepted.json()["ok"] is True
    assert accepted.headers["access-control-allow-origin"] == newsroom.allowed
    by_referer = post({"Referer": f"{newsroom.allowed}/signup?x=1"})
    assert by_referer.status_code == 200 and "Check your inbox" in by_referer.text
    newsroom.confirmations(1)
    assert newsroom.store.get("eve@example.org").status == Status.PENDING


def test_the_hosted_page_may_be_framed_only_by_listed_origins(newsroom: Newsroom) -> None:
    form = httpx.get(f"{newsroom.site}/subscribe")
    policy_header = form.headers["content-security-policy"]
    assert f"frame-ancestors 'self' {newsroom.allowed}" in policy_header
    other = httpx.get(f"{newsroom.site}/healthz")
    assert "content-security-policy" not in other.headers or "frame" not in str(other.headers)
    token_page = httpx.get(f"{newsroom.site}/unsubscribe/x.y")
    assert "frame-ancestors 'none'" in token_page.headers["content-security-policy"]


@needs_chromium
@pytest.mark.parametrize("script", [True, False])
def test_sign_up_from_another_origin_in_a_browser(
    newsroom: Newsroom, runner: CliRunner, script: bool
) -> None:
    options = [] if script else ["--no-script"]
    newsroom.pages["signup"] = page_with(snippet(runner, *options))
    email = f"{'script' if script else 'plain'}@example.org"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(f"{newsroom.allowed}/signup")
        page.fill("#nl-email", email)
        page.fill("#nl-first-name", "Ama")
        page.click("button[type=submit]")
        if script:
            page.locator(".nl-signup-status", has_text="Check your inbox").wait_for()
            assert page.url == f"{newsroom.allowed}/signup"  # answered in place
        else:
            page.locator("h1", has_text="Check your inbox").wait_for()
            assert page.url.startswith(newsroom.site)
        [mail] = newsroom.confirmations(1)
        assert newsroom.store.get(email).status == Status.PENDING
        confirm_in(page, newsroom, mail)
    person = newsroom.store.get(email)
    assert person.status == Status.ACTIVE and person.first_name == "Ama"


@needs_chromium
def test_the_hosted_form_in_an_iframe(newsroom: Newsroom) -> None:
    frame = f'<iframe src="{newsroom.site}/subscribe" width="360" height="600"></iframe>'
    newsroom.pages["framed"] = page_with(frame)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(f"{newsroom.other}/framed")  # not on the list: the browser refuses to show it
        page.wait_for_timeout(500)
        assert page.frames[1].locator("#email").count() == 0
        assert page.frames[1].url.startswith("chrome-error:")
        page.goto(f"{newsroom.allowed}/framed")
        inner = page.frame_locator("iframe")
        inner.locator("#email").fill("framed@example.org")
        inner.locator("button[type=submit]").click()
        inner.locator("h1", has_text="Check your inbox").wait_for()
        [mail] = newsroom.confirmations(1)
        confirm_in(page, newsroom, mail)
    assert newsroom.store.get("framed@example.org").status == Status.ACTIVE
