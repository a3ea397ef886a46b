"""Benchmark the send path against its goals: per-copy cost, throughput and peak memory.

Run from anywhere as `python benchmarks/send.py [--subscribers N] [--connections C] [--quick]
[--skip-memory] [--json]`. The goals, from the issue:

- personalisation plus MIME building at most 100 µs per subscriber;
- an end-to-end rate at least 0.7 of a baseline measured in the same run;
- peak memory under 200 MB, and within 20 % between 10,000 and 100,000 subscribers.

Setup, none of it measured: a temporary project gets a copy of `newsletter.toml` (plus an
`[[smtp]]` table pointing at the sink, `[sending] transport = "smtp"` and a `bounce_domain`, so
every copy gets its VERP envelope sender and delivery header), `assets/` and the
example issue; NEWSLETTER_SECRET is set, and its `newsletter.db` is filled with N subscribers
through `SubscriberStore.import_rows` (the time is printed). One name in ten is non-ASCII
and one subscriber in ten has no first name. The SMTP server is `tests/smtp_sink.py` run as its
own process: aiosmtpd on 127.0.0.1, counting and discarding, shared by the baseline and the
end-to-end run.

1. Per copy: the issue is built once, then `MessageFactory.render(Recipient(...))` is timed over
   up to 20,000 distinct subscribers (median of 5 passes, after a warm-up), against the same
   copy made with `email.message.EmailMessage` (the merge templates filled, headers set,
   `set_content` + `add_alternative`, `as_bytes()`) over 200 subscribers. Sampled rendered
   copies must parse back with `email` to exactly the filled text and HTML.
2. Baseline: one rendered copy's bytes pushed min(N, 20,000) times over C reused `smtplib`
   connections, one thread each calling `sendmail` in a plain loop: the fastest the sink takes
   mail from the plainest client.
3. End to end: the library's `campaign.send` in-process to all N subscribers, over C SMTP
   lanes, from an empty ledger: claims, rendering, the ledger's writes per copy (the commit
   point with synchronous=FULL), retries bookkeeping and all. Its rate is
   `report.sent / report.seconds`, right after the baseline. Then the price of a durable commit
   point: the `sending` mark written alone by one worker (no group commit to share its fsync),
   with synchronous=FULL (what `send` uses) and with NORMAL. Then two `newsletter send`
   processes started together on one fresh slug with C/2 connections each, sharing the
   ledger's claims: all copies over the longer of their two send loops, and each one's peak.
4. Peak memory: `python -m newsletter send ISSUE --yes --json` as a subprocess, for
   min(10,000, N) subscribers (a second project) and for N (the first project, under a fresh
   issue slug so the ledger starts empty). On Linux a child's ru_maxrss starts from its
   parent's peak RSS (exec records the old address space's high-water mark), so each send runs
   under a tiny wrapper interpreter that reports RUSAGE_CHILDREN of its only child: the send
   process's own peak, not this benchmark's.

With `--dkim`, DKIM signing is measured too (see `measure_dkim`): its cost per copy against
dkimpy's, and a signed send against an unsigned one in the same run (goal: at least 0.7).

Setup steps and their durations go to stderr, the table (or `--json`) to stdout. The exit status
is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import email.utils
import json
import os
import select
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from newsletter.compose.build import BuiltIssue, build_issue
from newsletter.compose.issues import load_issue
from newsletter.compose.mergetags import MergeTemplate
from newsletter.config import Config, Dkim, load_config
from newsletter.deliver.campaign import Campaign, SendOptions
from newsletter.deliver.db import connect
from newsletter.deliver.ledger import Ledger
from newsletter.deliver.message import MessageFactory, Recipient
from newsletter.deliver.sender import SendReport
from newsletter.deliver.subscribers import ImportRow, SubscriberStore
from newsletter.deliver.tokens import SECRET_ENV, Signer, signer_for

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2026-11-24-france-welcomes-chechen-refugees"
SINK = ROOT / "tests" / "smtp_sink.py"
SECRET = "benchmark-secret-not-for-production"

RENDER_GOAL_US = 100.0
RATE_GOAL = 0.7
MEMORY_GOAL_MB = 200.0
GROWTH_GOAL = 1.2
RENDER_COPIES = 20_000
CLASSIC_COPIES = 200
BASELINE_MAX = 20_000
MEMORY_SMALL = 10_000
SAMPLE = 50
DKIM_ROUNDS = 3

#: One first name in ten is non-ASCII, one in ten is missing.
FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", ""]
LAST = ["Smith", "Okafor", "Nguyen", "Brown", "Kowalski", "O'Brien", "Patel", "Jones", "Weber"]

#: Runs a command, then prints the peak RSS (KB) of that one child and its output, as JSON.
WRAPPER = """\
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr, "kb": peak}))
"""

log = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Figure:
    """One measured figure, its goal and how it fares (ratio to the goal's reference)."""

    figure: str
    value: float | str
    unit: str
    goal: str = ""
    ratio: float | None = None
    verdict: str = ""


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sink_process(workdir: Path) -> Iterator[int]:
    """Run the counting SMTP sink as its own process; yield its port; kill it afterwards."""
    port = free_port()
    errors = (workdir / "sink.err").open("w")
    sink = subprocess.Popen(
        [sys.executable, str(SINK), str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert sink.stdout is not None
        ready, _, _ = select.select([sink.stdout], [], [], 30)
        if not ready or sink.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the SMTP sink did not start: {(workdir / 'sink.err').read_text()}")
        yield port
    finally:
        sink.terminate()
        try:
            sink.wait(10)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait()
        errors.close()


def make_project(folder: Path, port: int, connections: int) -> Path:
    """A project in `folder`: the repository's config (sending to the sink), assets, issue."""
    folder.mkdir(parents=True)
    config = (ROOT / "newsletter.toml").read_text(encoding="utf-8")
    config += (
        '\n[sending]\ntransport = "smtp"\nbounce_domain = "bounces.example.org"\n\n'
        f'[[smtp]]\nname = "sink"\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "none"\nconnections = {connections}\n'
        "\n[publish]\ncheck_urls = false\n"  # news.example.org is not asked for the images
    )
    (folder / "newsletter.toml").write_text(config, encoding="utf-8")
    shutil.copytree(ROOT / "assets", folder / "assets")
    shutil.copytree(ROOT / "issues" / SLUG, folder / "issues" / SLUG)
    return folder


def people(count: int) -> Iterator[ImportRow]:
    """`count` distinct subscribers; one name in ten non-ASCII, one in ten without first name."""
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        yield ImportRow(i + 1, f"reader{i}@example.com", first, last, (), {})


def fill_subscribers(project: Path, count: int) -> float:
    """Import `count` subscribers into the project's database; the seconds it took."""
    start = time.perf_counter()
    with SubscriberStore.open(project / "newsletter.db") as store:
        report = store.import_rows(people(count))
    if report.imported != count:
        raise RuntimeError(f"imported {report.imported} of {count}: {report.problems[:3]}")
    return time.perf_counter() - start


def recipients(project: Path, limit: int) -> list[tuple[str, str, str, int]]:
    """The first `limit` subscribers as (email, first, last, id)."""
    conn = connect(project / "newsletter.db")
    try:
        rows = conn.execute(
            "SELECT email, first_name, last_name, id FROM subscribers ORDER BY id LIMIT ?",
            [limit],
        ).fetchall()
    finally:
        conn.close()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def classic_copy(
    factory: MessageFactory,
    built: BuiltIssue,
    config: Config,
    signer: Signer,
    templates: tuple[MergeTemplate, MergeTemplate, MergeTemplate],
    recipient: Recipient,
) -> bytes:
    """The same copy built the usual way, with `email.message.EmailMessage`."""
    subject, text, html = templates
    token = signer.subscriber_token(recipient.public_id, built.slug)
    values = factory.values(recipient, token)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr((config.sender.name, config.sender.address))
    message["To"] = email.utils.formataddr((recipient.name, recipient.email))
    if config.sender.reply_to:
        message["Reply-To"] = config.sender.reply_to
    message["Subject"] = subject.fill(values)
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = factory.message_id(recipient)
    message["List-Id"] = f"{config.name} <newsletter.{config.sender_domain}>"
    mailto = f"mailto:{config.sender.address}?subject=unsubscribe%20{token}"
    message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>, <{mailto}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text.fill(values))
    message.add_alternative(html.fill(values), subtype="html")
    return message.as_bytes()


def parses_back(
    factory: MessageFactory, built: BuiltIssue, signer: Signer, sample: list[Recipient]
) -> int:
    """How many of `sample` parse back to exactly the filled text and HTML (and right To)."""
    text, html = MergeTemplate(built.text), MergeTemplate.for_html(built.html)
    good = 0
    for recipient in sample:
        data = factory.render(recipient).data
        parsed = cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default))
        values = factory.values(recipient, signer.subscriber_token(recipient.public_id, built.slug))
        parts = [parsed.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
        bodies = [part.get_content().replace("\r\n", "\n") if part else None for part in parts]
        to = parsed["To"].addresses[0]
        good += (
            bodies == [text.fill(values), html.fill(values)]
            and to.addr_spec == recipient.email
            and to.display_name == recipient.name
        )
    return good


def measure_render(project: Path, count: int) -> tuple[list[Figure], MessageFactory, bytes]:
    """Per-copy figures; also the factory and one rendered copy for the baseline."""
    config = load_config(project / "newsletter.toml")
    built = build_issue(load_issue(project / "issues" / SLUG), config)
    signer = signer_for(config)
    factory = MessageFactory(built, config, signer)
    rows = recipients(project, min(count, RENDER_COPIES))
    render = factory.render

    def render_all() -> float:
        start = time.perf_counter()
        for address, first, last, subscriber_id in rows:
            render(Recipient(address, first, last, subscriber_id))
        return time.perf_counter() - start

    for address, first, last, subscriber_id in rows[:1000]:  # warm-up
        render(Recipient(address, first, last, subscriber_id))
    passes = [render_all() / len(rows) * 1e6 for _ in range(5)]
    per_copy = statistics.median(passes)
    log.print(f"render: {per_copy:.1f} µs per copy (median of 5 passes; fastest {min(passes):.1f})")

    templates = (
        MergeTemplate(built.subject),
        MergeTemplate(built.text),
        MergeTemplate.for_html(built.html),
    )
    classic_rows = [Recipient(*row) for row in rows[:CLASSIC_COPIES]]

    def classic_all() -> float:
        start = time.perf_counter()
        for recipient in classic_rows:
            classic_copy(factory, built, config, signer, templates, recipient)
        return time.perf_counter() - start

    classic_all()
    classic = statistics.median(classic_all() for _ in range(3)) / len(classic_rows) * 1e6

    step = max(1, len(rows) // SAMPLE)
    sample = [Recipient(*row) for row in rows[::step][:SAMPLE]]
    good = parses_back(factory, built, signer, sample)
    data = factory.render(Recipient(*rows[0])).data
    log.print(
        f"copy: {len(data) / 1024:.1f} KB (HTML {built.html_bytes / 1024:.1f} KB before "
        f"encoding); parses back identically: {'yes' if good == len(sample) else 'NO'} "
        f"({good}/{len(sample)} sampled copies)"
    )
    figures = [
        Figure(
            f"render per copy ({len(rows):,} copies)",
            round(per_copy, 1),
            "µs",
            f"≤ {RENDER_GOAL_US:.0f} µs",
            round(per_copy / RENDER_GOAL_US, 2),
            verdict(per_copy <= RENDER_GOAL_US),
        ),
        Figure(
            f"EmailMessage per copy ({len(classic_rows)} copies)",
            round(classic, 1),
            "µs",
            "",
            round(classic / per_copy, 1),
        ),
        Figure(
            "copies parsing back exactly",
            f"{good}/{len(sample)}",
            "",
            "all",
            None,
            verdict(good == len(sample)),
        ),
    ]
    return figures, factory, data


def measure_baseline(port: int, data: bytes, sender: str, count: int, connections: int) -> float:
    """Messages per second of plain smtplib `sendmail` loops over reused connections."""
    shares = [count // connections + (i < count % connections) for i in range(connections)]
    barrier = threading.Barrier(connections + 1)
    errors: list[BaseException] = []

    def push(share: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
        try:
            smtp.ehlo()
            barrier.wait()
            for _ in range(share):
                smtp.sendmail(sender, ["reader0@example.com"], data)
            smtp.quit()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
            raise

    threads = [threading.Thread(target=push, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"baseline failed: {errors[0]!r}")
    return count / seconds


def measure_end_to_end(
    project: Path, connections: int, config: Config | None = None, slug: str = SLUG
) -> SendReport:
    """`campaign.send` in-process to every subscriber, from an empty ledger: the example issue
    (copied under `slug` if that is another, so that its ledger starts empty), with `config`
    (default: the project's)."""
    config = config or load_config(project / "newsletter.toml")
    folder = project / "issues" / slug
    if not folder.exists():
        shutil.copytree(project / "issues" / SLUG, folder)
    options = SendOptions(connections=connections)
    with Campaign(config, folder, options) as campaign:
        return campaign.send()


def measure_commit_point(project: Path, count: int = 300) -> tuple[float, float]:
    """µs per commit point written alone (one worker, nothing to share an fsync with) with
    synchronous=FULL and with NORMAL, on rows claimed under a fresh slug."""
    ledger = Ledger(connect(project / "newsletter.db"), f"{SLUG}-commit-point")
    try:
        ledger.enqueue()
        jobs = ledger.claim(2 * count)
        timings = []
        for durable, share in ((True, jobs[:count]), (False, jobs[count:])):
            ledger.durable_commit_point = durable
            start = time.perf_counter()
            for job in share:
                ledger.mark_sending(job.subscriber_id, "<benchmark>", "sink")
            timings.append((time.perf_counter() - start) / len(share) * 1e6)
    finally:
        ledger.conn.close()
    return timings[0], timings[1]


def measure_shared(
    project: Path, slug: str, connections: int
) -> tuple[float, list[float], list[dict[str, Any]]]:
    """Two `newsletter send` processes started together on one issue, each with half the
    connections: their combined rate (all copies over the longer send loop), each one's peak
    RSS (MB) and JSON summary."""
    shutil.copytree(project / "issues" / SLUG, project / "issues" / slug)
    half = str(max(1, connections // 2))
    command = [sys.executable, "-m", "newsletter", "send", f"issues/{slug}", "--yes", "--json",
               "--skip-url-check", "--connections", half]  # fmt: skip
    runs = [
        subprocess.Popen([sys.executable, "-c", WRAPPER, *command], cwd=project,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [json.loads(run.communicate(timeout=3600)[0]) for run in runs]
    for result in results:
        if result["code"] != 0:
            raise RuntimeError(f"newsletter send failed ({result['code']}): {result['err']}")
    summaries = [json.loads(result["out"]) for result in results]
    sent = sum(summary["sent"] for summary in summaries)
    seconds = max(summary["seconds"] for summary in summaries)
    return sent / seconds, [result["kb"] / 1024 for result in results], summaries


def measure_dkim(
    project: Path, unsigned: MessageFactory, connections: int, keys: Path
) -> list[Figure]:
    """DKIM (`--dkim`): signing cost per copy, and a signed send against an unsigned one.

    A fresh RSA-2048 key signs. Per copy: `DkimKey.sign` (OpenSSL through `cryptography`) over
    200 rendered copies against dkimpy's own `dkim.sign` (pure-Python RSA) over 20; every
    signed copy timed is then checked with dkimpy's verifier. End to end: `campaign.send` to
    every subscriber unsigned, then signed (the key in a file in `keys`, outside the project,
    named by [dkim]), each under an issue slug of its own, same sink, same run, DKIM_ROUNDS
    times interleaved; the medians of the rates are compared.
    """
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from newsletter.deliver.message import DkimKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    config = load_config(project / "newsletter.toml")
    key_file = keys / "dkim.pem"
    key_file.write_bytes(pem)
    signed_config = config.model_copy(
        update={"dkim": Dkim(selector="bench", key_file=str(key_file))}
    )
    key = DkimKey.from_config(signed_config)
    assert key is not None
    copies = [
        unsigned.render(Recipient(email, first, last, sid)).data
        for email, first, last, sid in recipients(project, 200)
    ]
    start = time.perf_counter()
    signed = [key.sign(data) for data in copies]
    ours_us = (time.perf_counter() - start) / len(copies) * 1e6
    domain = config.sender_domain.encode()
    start = time.perf_counter()
    for data in copies[:20]:
        dkim.sign(data, b"bench", domain, pem, include_headers=list(DkimKey._HEADERS))
    dkimpy_us = (time.perf_counter() - start) / 20 * 1e6
    verified = sum(dkim.verify(data, dnsfunc=lambda *_args, **_kw: record) for data in signed)
    rates: dict[str, list[float]] = {"unsigned": [], "signed": []}
    for round_ in range(DKIM_ROUNDS):
        log.print(f"DKIM round {round_ + 1}: unsigned send, then signed send, to everyone…")
        for name, settings in (("unsigned", config), ("signed", signed_config)):
            slug = f"{SLUG}-{name}-{round_}"
            report = measure_end_to_end(project, connections, settings, slug)
            rates[name].append(report.sent / report.seconds)
    plain_rate = statistics.median(rates["unsigned"])
    signed_rate = statistics.median(rates["signed"])
    ratio = round(signed_rate / plain_rate, 3)
    goal, passed = f"ratio ≥ {RATE_GOAL}", verdict(ratio >= RATE_GOAL)
    speedup = round(dkimpy_us / ours_us, 1)
    checked, all_ok = f"{verified} of {len(signed)}", verified == len(signed)
    return [
        Figure("DKIM signing per copy (OpenSSL)", round(ours_us), "µs"),
        Figure("the same with dkimpy's dkim.sign", round(dkimpy_us), "µs", "", speedup),
        Figure("signed copies dkimpy verifies", checked, "", "all", None, verdict(all_ok)),
        Figure("campaign.send unsigned (median)", round(plain_rate), "msg/s"),
        Figure(
            "campaign.send DKIM-signed (median)", round(signed_rate), "msg/s", goal, ratio, passed
        ),
    ]


def peak_memory(project: Path, slug: str) -> tuple[float, dict[str, Any]]:
    """The peak RSS (MB) of `newsletter send` run as a subprocess, and its JSON summary."""
    if slug != SLUG:
        shutil.copytree(project / "issues" / SLUG, project / "issues" / slug)
    command = [sys.executable, "-m", "newsletter", "send", f"issues/{slug}", "--yes", "--json"]
    command.append("--skip-url-check")  # the example's base_url is not reachable from here
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"newsletter send failed ({result['code']}): {result['err']}")
    return result["kb"] / 1024, json.loads(result["out"])


def measure_memory(big: Path, small: Path, count: int, small_count: int) -> list[Figure]:
    """Peak memory of the two CLI sends, small first, and how much it grows."""
    figures = []
    peaks = []
    for project, subscribers, slug in ((small, small_count, SLUG), (big, count, f"{SLUG}-m")):
        log.print(f"newsletter send (subprocess) to {subscribers:,} subscribers…")
        peak, summary = peak_memory(project, slug)
        if summary["sent"] != subscribers:
            raise RuntimeError(f"the CLI sent {summary['sent']} of {subscribers}")
        log.print(f"  sent {summary['sent']:,} in {summary['seconds']:.1f} s")
        peaks.append(peak)
        figures += [
            Figure(
                f"peak RSS, send to {subscribers:,}",
                round(peak, 1),
                "MB",
                f"< {MEMORY_GOAL_MB:.0f} MB",
                round(peak / MEMORY_GOAL_MB, 2),
                verdict(peak < MEMORY_GOAL_MB),
            ),
            Figure(
                "  its rate (CLI)",
                round(summary["sent"] / summary["seconds"]),
                "msg/s",
            ),
        ]
    growth = peaks[1] / peaks[0]
    figures.append(
        Figure(
            f"peak RSS growth {small_count:,} → {count:,}",
            round((growth - 1) * 100, 1),
            "%",
            f"≤ {(GROWTH_GOAL - 1) * 100:.0f} %",
            round(growth, 3),
            verdict(growth <= GROWTH_GOAL),
        )
    )
    return figures


def measure(count: int, connections: int, skip_memory: bool, dkim: bool = False) -> list[Figure]:
    """Set up, run every measurement, return the figures."""
    os.environ[SECRET_ENV] = SECRET
    with (
        tempfile.TemporaryDirectory(prefix="newsletter-send-bench-") as tmp,
        sink_process(Path(tmp)) as port,
    ):
        big = make_project(Path(tmp) / "big", port, connections)
        log.print(f"importing {count:,} subscribers (setup, not measured)…")
        log.print(f"  took {fill_subscribers(big, count):.1f} s")
        small_count = min(MEMORY_SMALL, count)
        small = None
        if not skip_memory:
            small = make_project(Path(tmp) / "small", port, connections)
            log.print(f"importing {small_count:,} subscribers into a second project…")
            log.print(f"  took {fill_subscribers(small, small_count):.1f} s")

        log.print("personalisation + MIME…")
        figures, factory, data = measure_render(big, count)

        sender = load_config(big / "newsletter.toml").sender.address
        baseline_count = min(count, BASELINE_MAX)
        log.print(f"baseline: {baseline_count:,} identical copies over {connections} smtplib…")
        baseline = measure_baseline(port, data, sender, baseline_count, connections)
        log.print(f"end to end: campaign.send to {count:,} subscribers…")
        report = measure_end_to_end(big, connections)
        if report.sent != count:
            raise RuntimeError(f"campaign.send sent {report.sent} of {count}: {report}")
        rate = report.sent / report.seconds
        log.print(f"  sent {report.sent:,} in {report.seconds:.1f} s")
        full, normal = measure_commit_point(big)
        log.print(f"commit point alone: {full:.0f} µs at synchronous=FULL, {normal:.0f} µs NORMAL")
        log.print("two send processes sharing one issue…")
        shared, peaks, summaries = measure_shared(big, f"{SLUG}-shared", connections)
        split = " + ".join(f"{summary['sent']:,}" for summary in summaries)
        log.print(f"  sent {split} at {shared:.0f}/s together")
        if sum(summary["sent"] for summary in summaries) != count:
            raise RuntimeError(f"the two processes sent {split} of {count}")
        figures += [
            Figure(
                f"baseline smtplib ({baseline_count:,} copies)",
                round(baseline),
                "msg/s",
            ),
            Figure(
                f"end to end campaign.send ({count:,})",
                round(rate),
                "msg/s",
                f"ratio ≥ {RATE_GOAL}",
                round(rate / baseline, 3),
                verdict(rate / baseline >= RATE_GOAL),
            ),
            Figure(
                "  commit point alone, synchronous=FULL",
                round(full),
                "µs",
                "",
                round(full / normal, 1),
            ),
            Figure("  commit point alone, synchronous=NORMAL", round(normal), "µs"),
            Figure(
                f"two processes sharing one send ({split})",
                round(shared),
                "msg/s",
                f"ratio ≥ {RATE_GOAL}",
                round(shared / baseline, 3),
                verdict(shared / baseline >= RATE_GOAL),
            ),
            Figure(
                "  peak RSS of each",
                " / ".join(f"{peak:.1f}" for peak in peaks),
                "MB",
                f"< {MEMORY_GOAL_MB:.0f} MB",
                round(max(peaks) / MEMORY_GOAL_MB, 2),
                verdict(max(peaks) < MEMORY_GOAL_MB),
            ),
        ]
        if small is not None:
            figures += measure_memory(big, small, count, small_count)
        if dkim:
            figures += measure_dkim(big, factory, connections, Path(tmp))
    return figures


def print_table(figures: list[Figure], count: int, connections: int) -> None:
    """Print the figures as a rich table."""
    table = Table(
        title=f"Send path: {count:,} subscribers, {connections} connections, SMTP sink",
        caption=(
            "ratio: value / budget; end to end / baseline; EmailMessage / render (times "
            "slower); peak RSS at N / at 10,000"
        ),
    )
    table.add_column("figure")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("goal", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for figure in figures:
        value = f"{figure.value:,}" if isinstance(figure.value, int | float) else figure.value
        mark = {"PASS": "[green]PASS[/]", "FAIL": "[bold red]FAIL[/]"}.get(figure.verdict, "")
        table.add_row(
            figure.figure,
            f"{value} {figure.unit}".strip(),
            figure.goal,
            "" if figure.ratio is None else f"{figure.ratio:g}",
            mark,
        )
    console = Console()
    (console if console.is_terminal else Console(width=100)).print(table)


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print a table or JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000, help="default 100000")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections, default 4")
    parser.add_argument("--quick", action="store_true", help="5000 subscribers: a smoke run")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--dkim", action="store_true", help="also measure DKIM-signed sending")
    args = parser.parse_args(argv)
    count = 5000 if args.quick else args.subscribers
    if count < 1 or not 1 <= args.connections <= 64:
        parser.error("--subscribers must be at least 1 and --connections within 1..64")
    figures = measure(count, args.connections, args.skip_memory, args.dkim)
    if args.json:
        result = {"subscribers": count, "connections": args.connections}
        print(json.dumps(result | {"figures": [asdict(f) for f in figures]}, indent=2))
    else:
        print_table(figures, count, args.connections)
    if any(figure.verdict == "FAIL" for figure in figures):
        sys.exit(1)


if __name__ == "__main__":
    main()
