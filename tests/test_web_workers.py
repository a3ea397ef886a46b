"""The web app under several uvicorn worker processes (`uvicorn --workers 3`), on SQLite and
PostgreSQL: a CSRF token one worker issued is good at another, and the per-IP sign-up limit is
one limit for all of them, not one per worker."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import mailbox
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from smtp_sink import free_port
from web_server import serving

from newsletter.config import load_config
from newsletter.deliver import postgres
from newsletter.deliver.tokens import signer_for
from newsletter.web.app import create_app

WORKERS = 3
PER_IP = 4
CONNECTIONS = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, project: Path) -> str:
    """The project's database setting: its SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return "newsletter.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def workers(project: Path, database: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`uvicorn --workers 3` serving the project's app on 127.0.0.1; stopped afterwards."""
    config = _configure(project, database)
    signer_for(load_config(config))  # the key file exists before the workers start
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "newsletter.web.app:app_from_environment", "--factory",
        "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port),
        "--http", "newsletter.web.server:DeadlineProtocol", "--no-access-log",
        "--no-proxy-headers", "--log-level", "warning",
    ]  # fmt: skip
    env = os.environ | {"NEWSLETTER_CONFIG": str(config)}
    server = subprocess.Popen(command, cwd=project, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(_children(server.pid)) < WORKERS or not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"uvicorn did not start: {server.communicate(timeout=10)[1]!r}")
            time.sleep(0.1)
        yield port, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        assert server.stderr is not None
        server.stderr.close()


def _configure(project: Path, database: str) -> Path:
    """Point the project at `database`, with a small per-IP limit; the config file's path."""
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        f'database = "{database}"\n{text}\n[web]\nsubscribe_per_ip = "{PER_IP}/h"\n',
        encoding="utf-8",
    )
    return config


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (uvicorn's workers)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _worker_of(conn: http.client.HTTPConnection, port: int, workers: list[int]) -> int:
    """Which worker process holds the server's end of this open connection (from /proc)."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    ends = f":{port:04X}", f":{client_port:04X}"
    inode = next(
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1].endswith(ends[0]) and fields[2].endswith(ends[1])
    )
    for pid in workers:
        with os.scandir(f"/proc/{pid}/fd") as fds:
            if any(os.readlink(fd.path) == f"socket:[{inode}]" for fd in fds):
                return pid
    raise AssertionError("no worker holds the connection")


def _notices(project: Path) -> int:
    box = project / "outbox" / "notices"
    return len(list(mailbox.Maildir(box, create=False))) if (box / "cur").exists() else 0


def test_the_per_ip_limit_holds_across_worker_processes(
    project: Path, workers: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, server = workers
    pids = _children(server.pid)
    connections: list[http.client.HTTPConnection] = []
    pages: list[tuple[str, str]] = []
    serving: list[int] = []

    def page(conn: http.client.HTTPConnection) -> tuple[str, str]:
        conn.request("GET", "/subscribe")
        answer = conn.getresponse()
        return answer.getheader("set-cookie", ""), answer.read().decode()

    try:
        # connections are opened at once (and kept open) with a GET, so each sits on one
        # worker; a busy machine may give a batch to one worker: then another batch
        while len(set(serving)) < 2 and len(connections) < 4 * CONNECTIONS:
            batch = [http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                     for _ in range(CONNECTIONS)]  # fmt: skip
            with ThreadPoolExecutor(CONNECTIONS) as pool:
                pages += pool.map(page, batch, timeout=30)
            connections += batch
            serving += [_worker_of(conn, port, pids) for conn in batch]
        assert len(set(serving)) >= 2, "the connections all landed on one worker"
        # one visitor's token and cookie (issued by the first connection's worker), posted
        # through every connection: accepted by every worker, counted once for them all
        cookie = re.search(r"nl_csrf=([^;]+)", pages[0][0])[1]
        token = re.search(r'name="csrf" value="([^"]+)"', pages[0][1])[1]
        answers = []
        for i, conn in enumerate(connections):
            body = urlencode({"email": f"reader{i}@example.org", "csrf": token})
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"nl_csrf={cookie}",
            }
            conn.request("POST", "/subscribe", body, headers)
            answer = conn.getresponse()
            answer.read()
            answers.append(answer.status)
    finally:
        for conn in connections:
            conn.close()
    assert set(answers) == {200, 429}, answers  # no 403: every worker took the token
    assert answers.count(200) == PER_IP, (answers, serving)
    deadline = time.monotonic() + 10
    while _notices(project) < PER_IP and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _notices(project) == PER_IP


def _mailgun_call(token: str, now: float) -> bytes:
    stamp = str(int(now))
    signature = hmac.new(b"mg-key", f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    event = {"event": "failed", "severity": "permanent", "recipient": "nobody@example.org"}
    sign = {"timestamp": stamp, "token": token, "signature": signature}
    return json.dumps({"signature": sign, "event-data": event}).encode()


def test_a_relay_call_replayed_to_another_worker_is_refused(
    project: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two apps over one database stand for two workers: a Mailgun call taken by one is
    refused by the other (the tokens seen are in the database, not in a worker's memory)."""
    monkeypatch.setenv("NEWSLETTER_MAILGUN_SIGNING_KEY", "mg-key")
    config = load_config(_configure(project, database))
    signer = signer_for(config)
    now = time.time()
    call, other = _mailgun_call("a" * 50, now), _mailgun_call("b" * 50, now)
    try:
        with (
            serving(create_app(config, signer, send_mail=lambda to, data: None)) as one,
            serving(create_app(config, signer, send_mail=lambda to, data: None)) as two,
        ):
            assert httpx.post(f"{one}/webhooks/mailgun", content=call).status_code == 200
            again = httpx.post(f"{two}/webhooks/mailgun", content=call)
            assert again.status_code == 403 and "already received" in again.text
            assert httpx.post(f"{two}/webhooks/mailgun", content=other).status_code == 200
    finally:
        postgres.close_pools()
