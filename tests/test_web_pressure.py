"""`newsletter serve` under pressure: a locked database, forged proxy headers, old links,
timing probes, slow clients and foreign host names. Real uvicorn, real SQLite, real processes."""

from __future__ import annotations

import mailbox
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from outbox_notices import notices
from typer.testing import CliRunner
from web_server import serving

from newsletter.cli.app import app
from newsletter.config import Config, load_config
from newsletter.deliver.journal import UnsubscribeJournal, journal_path
from newsletter.deliver.subscribers import Status, SubscriberStore
from newsletter.deliver.tokens import Signer, load_key
from newsletter.web.app import create_app

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def configure(project: Path, web: str) -> Config:
    path = project / "newsletter.toml"
    path.write_text(path.read_text() + f"\n[web]\n{web}\n")
    return load_config()


@pytest.fixture
def store(project: Path) -> SubscriberStore:
    return SubscriberStore.open(project / "newsletter.db")


@pytest.fixture
def signer(project: Path) -> Signer:
    return Signer(load_key(project / ".newsletter" / "secret.key"))


@pytest.fixture
def hold_lock(project: Path) -> Iterator[Callable[[float], subprocess.Popen[str]]]:
    """Start another process that holds the database's write lock for some seconds."""
    started: list[subprocess.Popen[str]] = []

    def hold(seconds: float) -> subprocess.Popen[str]:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(project / "newsletter.db"), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        return holder

    yield hold
    for holder in started:
        holder.kill()
        holder.wait(timeout=10)


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_one_click_while_another_process_holds_the_write_lock_for_35_s(
    project: Path, store: SubscriberStore, signer: Signer, hold_lock: Callable[[float], object]
) -> None:
    config = load_config()  # lock_wait = 3 s, the default
    person = store.add("ada@example.org")
    token = signer.subscriber_token(person.public_id, "2026-11-24-x")
    with (
        serving(create_app(config, signer)) as site,
        httpx.Client(base_url=site, timeout=15) as http,
    ):
        holder = hold_lock(35)
        started = time.monotonic()
        answers: list[httpx.Response] = []
        post = threading.Thread(
            target=lambda: answers.append(
                http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
            )
        )
        post.start()
        time.sleep(0.5)
        with httpx.Client(base_url=site, timeout=2) as other:  # nothing else freezes
            assert other.get("/subscribe").status_code == 200
            assert other.get("/healthz").status_code == 200
        post.join(timeout=15)
        [answer] = answers
        assert answer.status_code == 200 and answer.text == "Unsubscribed."
        assert time.monotonic() - started < 10
        assert store.get(person.email).status == Status.ACTIVE  # still locked: journaled
        assert journal_path(config).read_text().count("\n") == 1
        holder.wait(timeout=40)
        deadline = time.monotonic() + 5
        while store.get(person.email).status != Status.UNSUBSCRIBED:
            assert time.monotonic() < deadline, "the journaled unsubscribe was not applied"
            time.sleep(0.1)
    assert store.history(person.id)[-1]["source"] == "one-click"
    assert not UnsubscribeJournal(journal_path(config)).pending()


def test_send_applies_journaled_unsubscribes_first(
    runner: CliRunner, example: Path, project: Path, store: SubscriberStore, signer: Signer
) -> None:
    config = load_config()
    leaving, staying = store.add("leaving@example.org"), store.add("staying@example.org")
    journal = UnsubscribeJournal(journal_path(config))
    journal.append(signer.subscriber_token(leaving.public_id, "old"), "one-click")
    journal.append("torn line without a valid token", "one-click")
    result = runner.invoke(app, ["send", str(example), "--yes"])
    assert result.exit_code == 0, result.stderr
    mailed = [
        message_from_bytes(m.as_bytes())["To"]
        for m in mailbox.Maildir(project / "outbox" / example.name, create=False)
    ]
    assert mailed == [staying.email]
    assert store.get(leaving.email).status == Status.UNSUBSCRIBED
    assert not journal.pending()


@pytest.mark.slow  # waits a second for the clock
def test_a_journaled_unsubscribe_does_not_undo_a_later_resubscribe(
    store: SubscriberStore, signer: Signer, project: Path
) -> None:
    config = load_config()
    person = store.add("ada@example.org")
    journal = UnsubscribeJournal(journal_path(config))
    journal.append(signer.subscriber_token(person.public_id, "x"), "one-click")
    time.sleep(1.1)  # the resubscribe comes later (times are kept to the second)
    store.set_status(person.id, Status.UNSUBSCRIBED, source="cli")
    store.set_status(person.id, Status.ACTIVE, source="web")
    assert journal.apply(store, signer) == 0
    assert store.get(person.email).status == Status.ACTIVE


def test_forwarded_for_from_an_untrusted_client_does_not_change_the_limit(
    project: Path, signer: Signer
) -> None:
    config = load_config()  # subscribe_per_ip = 10/h, no trusted proxies
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as http:
        token = csrf(http.get("/subscribe"))
        answers = [
            http.post(
                "/subscribe",
                data={"email": f"p{i}@example.org", "csrf": token},
                headers={"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}"},
            ).status_code
            for i in range(12)
        ]
    assert answers == [200] * 10 + [429] * 2


def test_forwarded_for_from_a_configured_proxy_is_believed(project: Path, signer: Signer) -> None:
    config = configure(project, 'trusted_proxies = ["127.0.0.1"]')
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as http:
        token = csrf(http.get("/subscribe"))

        def post(i: int, ip: str) -> int:
            data = {"email": f"p{i}@example.org", "csrf": token}
            return http.post("/subscribe", data=data, headers={"X-Forwarded-For": ip}).status_code

        assert [post(i, f"203.0.113.{i}") for i in range(12)] == [200] * 12
        assert [post(100 + i, "198.51.100.7") for i in range(11)] == [200] * 10 + [429]


def test_an_old_confirmation_link_never_resubscribes(
    project: Path, store: SubscriberStore, signer: Signer
) -> None:
    config = load_config()
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as http:
        form = http.get("/subscribe")
        http.post("/subscribe", data={"email": "ada@example.org", "csrf": csrf(form)})
        [mail] = notices(config, 1)
        path = re.search(r"https://news\.example\.org(/confirm/\S+)", mail)[1]
        page = http.get(path)
        assert http.post(path, data={"csrf": csrf(page)}).status_code == 200
        person = store.get("ada@example.org")
        assert person.status == Status.ACTIVE
        one_click = {"List-Unsubscribe": "One-Click"}
        token = signer.subscriber_token(person.public_id, "x")
        assert http.post(f"/unsubscribe/{token}", data=one_click).status_code == 200
        assert store.get("ada@example.org").status == Status.UNSUBSCRIBED
        stale = http.get(path)
        assert stale.status_code == 410 and "no longer applies" in stale.text
        again = http.post(path, data={"csrf": csrf(page)})
        assert again.status_code == 410
        assert store.get("ada@example.org").status == Status.UNSUBSCRIBED
        # signing up again sends a new link, and that one works
        http.post("/subscribe", data={"email": "ada@example.org", "csrf": csrf(form)})
        mails = notices(config, 2)
        fresh = next(
            link
            for text in mails
            for link in re.findall(r"https://news\.example\.org(/confirm/\S+)", text)
            if link != path
        )
        page = http.get(fresh)
        assert http.post(fresh, data={"csrf": csrf(page)}).status_code == 200
        assert store.get("ada@example.org").status == Status.ACTIVE


def test_sign_up_timing_reveals_nothing(project: Path, store: SubscriberStore) -> None:
    config = configure(project, 'subscribe_per_ip = "100/s"')
    signer = Signer(load_key(project / ".newsletter" / "secret.key"))
    for i in range(30):
        store.add(f"member{i}@example.org")

    def slow_mail(to: str, data: bytes) -> None:
        time.sleep(0.03)  # a slow mail server makes the difference obvious if it is awaited

    with (
        serving(create_app(config, signer, send_mail=slow_mail)) as site,
        httpx.Client(base_url=site) as http,
    ):
        token = csrf(http.get("/subscribe"))

        def timed(email: str) -> float:
            started = time.perf_counter()
            answer = http.post("/subscribe", data={"email": email, "csrf": token})
            assert answer.status_code == 200
            return time.perf_counter() - started

        for i in range(5):  # warm up
            timed(f"warm{i}@example.org")
        member, stranger = [], []
        for i in range(30):
            member.append(timed(f"member{i}@example.org"))
            stranger.append(timed(f"stranger{i}@example.org"))
    difference = abs(statistics.median(member) - statistics.median(stranger))
    assert difference < 0.005, (statistics.median(member), statistics.median(stranger))
    threshold = statistics.median(member + stranger)
    right = sum(t < threshold for t in member) + sum(t >= threshold for t in stranger)
    assert right <= 45  # of 60: guessing from the time is barely better than a coin


def test_slow_and_idle_connections_are_cut_off(project: Path, signer: Signer) -> None:
    config = load_config()
    with serving(create_app(config, signer), request_timeout=1.0) as site:
        host, port = site.removeprefix("http://").split(":")
        idle = socket.create_connection((host, int(port)), timeout=5)
        slow = socket.create_connection((host, int(port)), timeout=5)
        started = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        closed_after = None
        for byte in request:  # a byte every 50 ms: the whole request would take 12 s
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
        assert closed_after is not None and closed_after < 3
        assert idle.recv(1) == b""  # closed without a word
        idle.close()
        slow.close()
        assert httpx.get(f"{site}/healthz").text == "ok"  # others are still served


def test_only_configured_host_names_are_answered(project: Path, signer: Signer) -> None:
    config = configure(project, 'allowed_hosts = ["newsletter.internal"]')
    with serving(create_app(config, signer)) as site:
        for host in ("news.example.org", "newsletter.internal", "localhost", "127.0.0.1"):
            assert httpx.get(f"{site}/healthz", headers={"Host": host}).status_code == 200
        for host in ("attacker.example", "news.example.org.attacker.example", ""):
            assert httpx.get(f"{site}/healthz", headers={"Host": host}).status_code == 400


def test_preview_answers_only_loopback_names(example: Path) -> None:
    from newsletter.web.preview import PreviewSession
    from newsletter.web.preview import create_app as preview_app

    with serving(preview_app(PreviewSession(example))) as site:
        assert httpx.get(f"{site}/state.json").status_code == 200
        rebound = httpx.get(f"{site}/state.json", headers={"Host": "rebind.attacker.example"})
        assert rebound.status_code == 400


def test_other_writes_answer_503_while_the_lock_is_held(
    project: Path, store: SubscriberStore, signer: Signer, hold_lock: Callable[[float], object]
) -> None:
    config = configure(project, "lock_wait = 0.5")
    person = store.add("ada@example.org")
    store.set_status(person.id, Status.UNSUBSCRIBED, source="cli")
    token = signer.subscriber_token(person.public_id, "x")
    with serving(create_app(config, signer)) as site, httpx.Client(base_url=site) as http:
        page = http.get(f"/unsubscribe/{token}")
        hold_lock(5)
        busy = http.post(f"/resubscribe/{token}", data={"csrf": csrf(page)})
        assert busy.status_code == 503 and "busy" in busy.text
    assert store.get(person.email).status == Status.UNSUBSCRIBED
