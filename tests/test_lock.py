"""Folder / file locks: held by another process -> a clear error naming it; released when that process dies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hf_bort._lock import InUseError, exclusive_lock
from lock_holder import HOLD


def test_a_lock_held_by_another_process_is_refused_with_its_pid_and_freed_when_it_dies(tmp_path, held_lock):
    path = tmp_path / "out" / ".hf_bort.lock"
    holder = held_lock(path)
    with pytest.raises(InUseError, match=rf"The folder 'out' is in use by another process \(pid {holder.pid} "):
        with exclusive_lock(path, "The folder 'out'"):
            pass
    holder.release()  # killed: the kernel drops its lock, no stale lock file blocks the next run
    with exclusive_lock(path, "The folder 'out'"):
        assert f"pid {os.getpid()} " in path.read_text()


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    path = tmp_path / "x.lock"
    with exclusive_lock(path, "x"):
        with exclusive_lock(path, "x"):
            pass
        check = subprocess.run(
            [sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(path)],
            capture_output=True,
            text=True,
        )
        assert "InUseError" in check.stderr  # still held after the inner block ended
    subprocess.run(
        [sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(path)],
        check=True,
        capture_output=True,
    )
