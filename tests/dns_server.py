"""A real DNS server for tests: Debian's dnsmasq on 127.0.0.1, answering only from the records
it is given: no upstream server and no /etc/hosts, every other name is NXDOMAIN (`local=/#/`),
so no question ever leaves the machine."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
from smtp_sink import free_port

DNSMASQ = shutil.which("dnsmasq", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")

Records = Mapping[str, str | Sequence[str]]


def _values(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _quoted(text: str) -> str:
    """A TXT value as dnsmasq wants it: quoted strings of at most 255 characters."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return ",".join(f'"{chunk}"' for chunk in chunks)


def dnsmasq_config(
    port: int, txt: Records | None = None, mx: Records | None = None, hosts: Records | None = None
) -> str:
    """dnsmasq's configuration: `txt` name -> record(s), `mx` name -> host(s) in order of
    preference, `hosts` name -> address(es)."""
    lines = [
        f"port={port}", "listen-address=127.0.0.1", "bind-interfaces", "no-resolv",
        "no-hosts", "local=/#/", "pid-file=", "user=", "log-facility=-",
    ]  # fmt: skip
    for name, records in (txt or {}).items():
        lines += [f"txt-record={name},{_quoted(record)}" for record in _values(records)]
    for name, exchangers in (mx or {}).items():
        lines += [
            f"mx-host={name},{host},{10 * (i + 1)}" for i, host in enumerate(_values(exchangers))
        ]
    for name, addresses in (hosts or {}).items():
        lines.append(f"host-record={name},{','.join(_values(addresses))}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_dns(
    folder: Path,
    txt: Records | None = None,
    mx: Records | None = None,
    hosts: Records | None = None,
) -> Iterator[int]:
    """Run dnsmasq with these records from `folder`; yield its port; stop it afterwards."""
    assert DNSMASQ is not None
    port = free_port()
    conf = folder / f"dnsmasq-{port}.conf"
    conf.write_text(dnsmasq_config(port, txt, mx, hosts))
    log = (folder / f"dnsmasq-{port}.log").open("wb")
    process = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", f"--conf-file={conf}"], stdout=log, stderr=log
    )
    try:
        _wait_ready(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    query = dns.message.make_query("ready.test.", "TXT")
    while True:
        assert process.poll() is None, "dnsmasq exited; see its log in the test's folder"
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return
        except (OSError, dns.exception.Timeout):
            assert time.monotonic() < deadline, "dnsmasq did not answer within 5 s"
