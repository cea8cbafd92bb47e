"""
Exclusive locks on output folders and shared files, so two processes never write the same results at once.

[`exclusive_lock`] takes an advisory `flock` on a lock file (created next to what it guards) without waiting: when
another process holds it, [`InUseError`] says which (pid, host, command, start time, as the holder wrote them into the
lock file). The kernel releases the lock when the holder exits or is killed, so a crashed run never leaves a stale
lock behind. Within one process the lock is re-entrant (a command may hold it across `run()` and the files it
writes afterwards). Advisory means other programs may ignore it; every hf_bort writer of the guarded files takes it.
Needs `fcntl` (Linux, macOS); elsewhere it raises rather than run unlocked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_HELD: dict[str, list] = {}  # resolved lock path -> [open file, depth]


class InUseError(RuntimeError):
    """Another process holds the lock on this folder or file."""


def is_held(lock_path: str | os.PathLike) -> bool:
    """Whether this process holds the lock on `lock_path` (taken with [`exclusive_lock`] and not yet released)."""
    return str(Path(lock_path).resolve()) in _HELD


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "a process that has not written its pid yet"


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike, what: str) -> Iterator[Path]:
    """
    Holds an exclusive lock on `lock_path` for the block; `what` names the guarded thing in the error ("output folder
    'ose-run'"). Raises `InUseError` at once, naming the holder, when another process has it.
    """
    try:
        import fcntl
    except ImportError as error:  # Windows
        raise InUseError(f"Cannot lock {what}: file locks need fcntl, which {sys.platform} lacks.") from error
    path = Path(lock_path)
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InUseError(
                f"{what} is in use by another process ({_holder(path)}; lock file {path}). Wait for it to finish or "
                "use another folder; the lock goes away by itself when that process exits."
            ) from None
        # A holder may delete its lock file before releasing it (compress does, in an output folder it created and
        # leaves empty): a lock taken on a file no longer at `path` guards nothing, so open the one now there again.
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        command = " ".join(sys.argv)[:200]
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%H:%M:%S')}: {command}\n")
        handle.flush()
        _HELD[key] = [handle, 1]
        yield path
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
