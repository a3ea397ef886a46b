"""Claims of a dead sender on this host are freed at once, a zombie's included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from newsletter.deliver.ledger import alive


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_a_dead_process_not_yet_collected_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _state(child.pid) != "Z":
            assert time.monotonic() < deadline, "the child did not die"
            time.sleep(0.01)
        assert not alive(child.pid)  # os.kill(pid, 0) alone still finds a zombie
    finally:
        child.kill()
        child.wait(timeout=10)
    assert not alive(child.pid)
    assert alive(os.getpid())
