"""A lock held by another process, for tests of `hf_bort._lock` users."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

LOCK_MODULE = Path(__file__).resolve().parents[1] / "src" / "hf_bort" / "_lock.py"
# The holder loads _lock.py alone (stdlib only): importing the package (torch, transformers) takes far longer.
HOLD = f"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("_lock", {str(LOCK_MODULE)!r})
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
with lock.exclusive_lock(sys.argv[1], "held"):
    print("held", flush=True)
    time.sleep(120)
"""


class HeldLock:
    """Another process holding `path`'s lock until `release()` kills it (SIGKILL: no cleanup code runs)."""

    def __init__(self, path: Path):
        self.process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def held_lock():
    holders = []

    def hold(path):
        holders.append(HeldLock(Path(path)))
        return holders[-1]

    yield hold
    for holder in holders:
        if holder.process.poll() is None:
            holder.release()
