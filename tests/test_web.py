"""`newsletter serve`'s app under uvicorn on 127.0.0.1, driven with real HTTP requests."""

from __future__ import annotations

import html
import mailbox
import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from web_server import serving

from newsletter.config import Config, load_config
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key
from newsletter.web.app import create_app, mask

pytestmark = pytest.mark.usefixtures("each_database")


class Clock:
    """A clock the test can move forward."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config(project: Path) -> Config:
    return load_config()


@pytest.fixture
def signer(config: Config) -> Signer:
    return Signer(load_key(config.path(config.secret_file)))


@pytest.fixture
def store(config: Config) -> SubscriberStore:
    return SubscriberStore.open(config.database_location)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(config: Config, signer: Signer, clock: Clock) -> Iterator[str]:
    with serving(create_app(config, signer, clock=clock)) as url:
        yield url


@pytest.fixture
def client(site: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site, timeout=10) as http:
        yield http


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def outbox(config: Config, expect: int = 0) -> list[bytes]:
    """The notices in the outbox, once there are `expect` of them (sign-up sends after it
    answers), waiting at most 5 s."""
    box = config.path(config.sending.outbox) / "notices"
    deadline = time.monotonic() + 5
    while True:
        ready = (box / "cur").exists()
        found = [m.as_bytes() for m in mailbox.Maildir(box, create=False)] if ready else []
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def confirm_path(message: bytes) -> str:
    text = message_from_bytes(message, policy=policy.default).get_body(("plain",)).get_content()
    link = re.search(r"https://news\.example\.org(/confirm/\S+)", text)[1]
    return link


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


def test_rfc8058_one_click_post_unsubscribes_at_once(
    client: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org", first_name="Ada")
    token = signer.subscriber_token(person.public_id, "2026-11-24-x")
    response = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert store.get(person.email).status == Status.UNSUBSCRIBED
    assert store.history(person.id)[-1]["source"] == "one-click"


def test_get_never_unsubscribes(
    client: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org")
    token = signer.subscriber_token(person.public_id, "2026-11-24-x")
    for _ in range(3):
        page = client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
    assert store.get(person.email).status == Status.ACTIVE
    assert "ad***@ex***.org" in page.text and "ada@example.org" not in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text


def test_page_button_unsubscribes_then_offers_resubscribe(
    client: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    person = store.add("ada@example.org")
    token = signer.subscriber_token(person.public_id, "2026-11-24-x")
    page = client.get(f"/unsubscribe/{token}")
    done = client.post(
        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click", "csrf": csrf(page)}
    )
    assert done.status_code == 200 and "You're unsubscribed" in done.text
    assert store.get(person.email).status == Status.UNSUBSCRIBED
    assert store.history(person.id)[-1]["source"] == "web"
    back = client.post(f"/resubscribe/{token}", data={"csrf": csrf(done)})
    assert back.status_code == 200 and "Welcome back" in back.text
    assert store.get(person.email).status == Status.ACTIVE


@pytest.mark.parametrize("kind", ["forged", "altered", "garbage"])
def test_forged_or_altered_tokens_get_400_and_change_nothing(
    client: httpx.Client, store: SubscriberStore, signer: Signer, kind: str
) -> None:
    person = store.add("ada@example.org")
    store.add("bob@example.org")
    real = signer.subscriber_token(person.public_id, "2026-11-24-x")
    other = signer.subscriber_token(store.get("bob@example.org").public_id, "2026-11-24-x")
    token = {
        "forged": Signer(b"guess").subscriber_token(person.public_id, "2026-11-24-x"),
        "altered": other.split(".")[0] + "." + real.split(".")[1],
        "garbage": "not-a-token",
    }[kind]
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 400 and "Nothing was changed" in page.text
    posted = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert posted.status_code == 400
    assert {s.status for s in store.iter()} == {Status.ACTIVE}


def test_double_opt_in_end_to_end_through_the_outbox(
    client: httpx.Client, store: SubscriberStore, config: Config
) -> None:
    form = client.get("/subscribe")
    assert form.status_code == 200 and 'name="website"' in form.text
    sent = client.post(
        "/subscribe", data={"email": "Zoe@Example.org", "first_name": "Zoë", "csrf": csrf(form)}
    )
    assert sent.status_code == 200 and "Check your inbox" in sent.text
    [message] = outbox(config, 1)
    person = store.get("zoe@example.org")
    assert person.status == Status.PENDING and person.first_name == "Zoë"
    assert message_from_bytes(message)["Subject"] == "Confirm your subscription to The Bright Side"
    path = confirm_path(message)
    button = client.get(path)
    assert button.status_code == 200 and "Zo***@ex***.org" in button.text  # local part kept
    assert store.get("zoe@example.org").status == Status.PENDING  # a GET confirms nobody
    done = client.post(path, data={"csrf": csrf(button)})
    assert done.status_code == 200 and "You're subscribed" in html.unescape(done.text)
    assert store.get("zoe@example.org").status == Status.ACTIVE
    assert [h["source"] for h in store.history(person.id)] == ["web", "web"]


def test_submitting_again_reveals_nothing(
    client: httpx.Client, store: SubscriberStore, config: Config
) -> None:
    store.add("member@example.org")

    def submit(email: str) -> str:
        form = client.get("/subscribe")
        answer = client.post("/subscribe", data={"email": email, "csrf": csrf(form)})
        assert answer.status_code == 200
        return re.sub(r'value="[^"]+"', "", answer.text)

    assert submit("member@example.org") == submit("stranger@example.org")
    assert submit("stranger@example.org") == submit("member@example.org")
    recipients = [message_from_bytes(m)["To"] for m in outbox(config)]
    assert "member@example.org" not in recipients


def test_forms_need_a_csrf_token(client: httpx.Client, store: SubscriberStore) -> None:
    missing = client.post("/subscribe", data={"email": "eve@example.org"})
    assert missing.status_code == 403
    other_visitor = httpx.get(f"{client.base_url}/subscribe")
    stolen = client.post(
        "/subscribe", data={"email": "eve@example.org", "csrf": csrf(other_visitor)}
    )
    client.cookies.clear()
    assert stolen.status_code == 403
    assert store.get("eve@example.org") is None


def test_rate_limits_per_address_and_per_ip(client: httpx.Client, config: Config) -> None:
    form = client.get("/subscribe")
    token = csrf(form)
    for _ in range(5):
        client.post("/subscribe", data={"email": "same@example.org", "csrf": token})
    assert len(outbox(config, 3)) == 3  # subscribe_per_address = 3/h
    answers = [
        client.post("/subscribe", data={"email": f"p{i}@example.org", "csrf": token}).status_code
        for i in range(6)
    ]
    assert answers == [200] * 5 + [429]  # subscribe_per_ip = 10/h, 5 used above


def test_honeypot_stores_and_sends_nothing(
    client: httpx.Client, store: SubscriberStore, config: Config
) -> None:
    form = client.get("/subscribe")
    answer = client.post(
        "/subscribe",
        data={"email": "bot@example.org", "website": "http://spam", "csrf": csrf(form)},
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert store.get("bot@example.org") is None and outbox(config) == []


def test_oversized_requests_are_refused(client: httpx.Client) -> None:
    response = client.post("/subscribe", content=b"x" * 20_000)
    assert response.status_code == 413


def test_no_page_echoes_raw_input(client: httpx.Client) -> None:
    form = client.get("/subscribe")
    answer = client.post(
        "/subscribe", data={"email": "<script>alert(1)</script>", "csrf": csrf(form)}
    )
    assert answer.status_code == 400
    assert "<script>alert" not in answer.text and "alert(1)" not in answer.text
    assert "does not look like an email address" in answer.text


def test_expired_confirmation_gets_400(
    client: httpx.Client, clock: Clock, config: Config, store: SubscriberStore
) -> None:
    form = client.get("/subscribe")
    client.post("/subscribe", data={"email": "late@example.org", "csrf": csrf(form)})
    path = confirm_path(outbox(config, 1)[0])
    clock.now += 8 * 86400  # confirm_days = 7
    page = client.get(path)
    assert page.status_code == 400 and "expired" in page.text
    assert store.get("late@example.org").status == Status.PENDING


def test_archive_is_served(client: httpx.Client, config: Config) -> None:
    assert client.get("/").status_code == 404
    site = config.path(config.web.site)
    (site / "2026-11-24-x").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>Archive</title>")
    (site / "2026-11-24-x" / "index.html").write_text("<!doctype html><title>Issue</title>")
    assert "Archive" in client.get("/").text
    assert "Issue" in client.get("/2026-11-24-x/").text


def test_mask() -> None:
    assert mask("ada@example.org") == "ad***@ex***.org"
    assert mask("x@y.co.uk") == "x***@y.***.uk"


def test_pages_are_valid_html5(
    client: httpx.Client, store: SubscriberStore, signer: Signer
) -> None:
    import html5lib

    token = signer.subscriber_token(store.add("ada@example.org").public_id, "2026-11-24-x")
    form = client.get("/subscribe")
    pages = [
        form,
        client.post("/subscribe", data={"email": "bad", "csrf": csrf(form)}),
        client.post("/subscribe", data={"email": "new@example.org", "csrf": csrf(form)}),
        client.get(f"/unsubscribe/{token}"),
        client.post(
            f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click", "csrf": csrf(form)}
        ),
        client.get("/unsubscribe/forged.token"),
        client.get(f"/preferences/{token}"),
        client.post(f"/preferences/{token}", data={"csrf": csrf(form), "first_name": "Ada"}),
        client.post(f"/resubscribe/{token}", data={"csrf": csrf(form)}),
    ]
    for page in pages:
        html5lib.HTMLParser(strict=True).parse(page.text)  # raises on any parse error


def test_app_factory_for_asgi_servers(
    config: Config, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    from newsletter.web.app import app_from_environment

    monkeypatch.setenv("NEWSLETTER_CONFIG", str(project / "newsletter.toml"))
    with serving(app_from_environment()) as url:
        assert httpx.get(f"{url}/healthz").text == "ok"


def test_sign_up_wording_comes_from_the_config_and_templates(
    project: Path, signer: Signer, store: SubscriberStore
) -> None:
    toml = project / "newsletter.toml"
    toml.write_text(
        toml.read_text()
        .replace("The Bright Side", "Harbour Notes")
        .replace("One email a week with the good news", "Tides, boats and the people on them")
    )
    own = project / "templates" / "notices"
    own.mkdir(parents=True)
    (own / "confirm.txt.j2").write_text(
        "Subject: One click to join {{ config.name }}\n\nAhoy! {{ link }}\n"
    )
    config = load_config()
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as http:
        form = http.get("/subscribe")
        assert "Tides, boats and the people on them" in form.text
        assert "good news" not in form.text and "Bright Side" not in form.text
        http.post("/subscribe", data={"email": "ada@example.org", "csrf": csrf(form)})
        [message] = outbox(config, 1)
    parsed = message_from_bytes(message, policy=policy.default)
    assert parsed["Subject"] == "One click to join Harbour Notes"
    assert parsed.get_body(("plain",)).get_content().startswith("Ahoy! https://")
