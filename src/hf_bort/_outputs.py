"""Output folders: checked before any work, never overlapping their source, replaced atomically.

Every command that writes a folder goes through these helpers so that no input is lost:

- [`check_output_dir`]: the path (and its nearest existing ancestor) must be a folder or not exist yet, and
  writable (probed by creating and removing an empty folder); a file where a folder goes or an unwritable place is
  an error *before* work (transformers' `save_pretrained` only logs an error and returns; a permission error used
  to come only after the models were loaded and trained).
- [`check_overwrite`]: a non-empty existing output folder is replaced only with `overwrite=True` (`--overwrite`).
- [`check_not_overlapping`]: an output that is, contains or lies inside its source folder is refused (replacing it
  would delete the source).
- [`make_workdir`] / [`replace_dir`]: the new content is written to `.NAME.tmp-HOST-PID-*` beside the output and
  moved in with two renames (old aside to `.NAME.old-HOST-PID-*`, new in), the old one deleted only then. A kill at
  any point leaves either the old or the new folder complete under one of these names.
- [`clean_stale`]: before a new write, our own leftovers whose process is gone (same host) are removed, and an old
  folder set aside by a run killed between the two renames is put back.
- [`claim_entries`] / [`remove_written`]: a command that writes into a folder in place (`compress`, which resumes)
  records each top-level entry in `FOLDER/.hf_bort-written.json` before writing it, and starting again deletes
  exactly those entries: never an entry it did not write, never a folder it cannot prove is its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"


def check_output_dir(path: str | os.PathLike, field: str = "output_dir") -> Path:
    """Raise a ValueError naming `field` when `path` (or its nearest existing ancestor) is not a writable folder."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ValueError(
            f"{field} {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist: remove the "
            "link or create its target folder, or give another folder."
        )
    if path.exists() and not path.is_dir():
        raise ValueError(f"{field} {str(path)!r} is a file, not a folder: give a folder path (existing or new).")
    existing = path if path.is_dir() else None
    for ancestor in path.absolute().parents:
        if existing is not None:
            break
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ValueError(f"{field} {str(path)!r} lies under {str(ancestor)!r}, which is a file, not a folder.")
            existing = ancestor
    if existing is not None:
        _check_writable(existing, path, field)
    return path


def check_overwrite(path: str | os.PathLike, overwrite: bool, field: str = "output_dir") -> None:
    """The one rule of every writer: a non-empty existing folder is replaced only with `overwrite=True`
    (CLI: `--overwrite`); otherwise a ValueError naming `field`."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f"{field} {str(path)!r} is not empty; pass overwrite=True (--overwrite) to replace it.")


def _check_writable(folder: Path, path: Path, field: str) -> None:
    """Create and remove an empty folder in `folder`: the only test that holds for root, read-only mounts and ACLs."""
    try:
        probe = tempfile.mkdtemp(prefix=".hf_bort-write-probe-", dir=folder)
    except OSError as error:
        where = "" if folder == path else f" (its nearest existing folder {str(folder)!r})"
        raise ValueError(
            f"{field} {str(path)!r} is not writable{where}: {error.strerror or error}. "
            "Choose a folder you can write to."
        ) from None
    os.rmdir(probe)


def check_not_overlapping(
    source: str | os.PathLike, output: str | os.PathLike, source_field: str, output_field: str = "output_dir"
) -> None:
    """
    Refuse an `output` folder that is, contains or lies inside the existing local folder `source`, or that contains
    the existing file `source` (symbolic links resolved). Every command that reads a local input and writes a folder
    calls it before any work (`export`, `convert`, `extract`, `compress` for its model and its dataset).
    """
    source_path = Path(source)
    if not source_path.exists():
        return  # a Hub id or a dataset name: nothing on disk that the output could replace
    src, out = source_path.resolve(), Path(output).resolve()
    if out == src:
        relation = "is"
    elif src in out.parents:
        relation = "lies inside"
    elif out in src.parents:
        relation = "contains"
    else:
        return
    kind = "folder" if src.is_dir() else "file"
    raise ValueError(
        f"{output_field} {str(output)!r} {relation} the source {kind} {source_field}={str(source)!r}; writing there "
        "would replace the source. Choose an output folder outside the source."
    )


def _prefix(output_dir: Path, kind: str) -> str:
    return f".{output_dir.name}.{kind}-{_HOST}-{os.getpid()}-"


_OWN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[^/]+$")
# Earlier versions named the temporary folder `.NAME.tmp-` + tempfile's 8 random characters, with no owner: such a
# folder is treated as stale once it is older than a day (no export runs that long).
_LEGACY = re.compile(r"^\.(?P<name>.+)\.tmp-[a-z0-9_]{8}$")
LEGACY_STALE_SECONDS = 24 * 3600


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale(output_dir: str | os.PathLike) -> list[Path]:
    """Remove our own leftovers beside `output_dir` from processes that are gone; return what was removed.

    Only folders named by [`make_workdir`] / [`replace_dir`] on this host, whose process no longer runs, are
    touched: `.NAME.tmp-*` (an unfinished write) is deleted; `.NAME.old-*` (a replaced folder) is deleted when
    `output_dir` exists and moved back to `output_dir` when it does not (the run was killed between its renames).
    """
    output_dir = Path(output_dir)
    parent = output_dir.absolute().parent
    if not parent.is_dir():
        return []
    removed: list[Path] = []
    olds: list[Path] = []
    for entry in parent.iterdir():
        legacy = _LEGACY.match(entry.name)
        if legacy and legacy["name"] == output_dir.name and entry.is_dir():
            if time.time() - entry.stat().st_mtime > LEGACY_STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            continue
        match = _OWN.match(entry.name)
        if not match or match["name"] != output_dir.name or match["host"] != _HOST or not entry.is_dir():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _process_alive(pid):
            continue
        if match["kind"] == "old":
            olds.append(entry)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if olds and not output_dir.exists():
        restore = max(olds, key=lambda path: path.stat().st_mtime)
        os.replace(restore, output_dir)
        logger.warning("Restored %s from %s (a replacement was interrupted).", output_dir, restore.name)
        olds.remove(restore)
    for entry in olds:
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def make_workdir(output_dir: str | os.PathLike) -> Path:
    """A fresh `.NAME.tmp-HOST-PID-*` folder beside `output_dir` (same filesystem, so the final move is a rename)."""
    output_dir = Path(output_dir)
    parent = output_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_prefix(output_dir, "tmp"), dir=parent))


def replace_dir(workdir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Move `workdir` to `output_dir`, replacing an existing folder: rename the old aside, move the new in, then
    delete the old. If moving the new one in fails, the old one is put back."""
    workdir, output_dir = Path(workdir), Path(output_dir)
    if not output_dir.exists():
        os.replace(workdir, output_dir)
        return
    aside = Path(tempfile.mkdtemp(prefix=_prefix(output_dir, "old"), dir=output_dir.absolute().parent))
    os.rmdir(aside)  # only the unique name is wanted
    os.replace(output_dir, aside)
    try:
        os.replace(workdir, output_dir)
    except BaseException:
        os.replace(aside, output_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- written entries
WRITTEN_NAME = ".hf_bort-written.json"


def read_written(folder: str | os.PathLike) -> list[str] | None:
    """
    The top-level entries of `folder` that an hf_bort run recorded (with [`claim_entries`]) as its own, or `None`
    when `folder` has no record. A record that cannot be read is a ValueError naming the file: nothing in the folder
    can then be proven ours, so nothing may be deleted.
    """
    path = Path(folder) / WRITTEN_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        data = error
    names = data.get("written") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) and _plain_name(name) for name in names):
        problem = str(data) if isinstance(data, Exception) else "not an object with a list of entry names 'written'"
        raise ValueError(
            f"{path} (the record of what hf_bort wrote in {str(folder)!r}) cannot be read: {problem}. Without it "
            "nothing there can be proven to be hf_bort's, so nothing is deleted: check the folder's content and "
            "delete it yourself, or choose another output folder."
        )
    return names


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def claim_entries(folder: str | os.PathLike, names: list[str], field: str = "output_dir") -> None:
    """
    Record `names` (top-level entries of `folder`) as written by this run, before they are written. An entry that
    exists and no earlier run recorded is not ours: a ValueError naming it, so that nothing of the user's is ever
    mixed with (or later deleted as) our output.
    """
    folder = Path(folder)
    recorded = read_written(folder) or []
    foreign = sorted(name for name in names if name not in recorded and os.path.lexists(folder / name))
    if foreign:
        raise ValueError(
            f"{field} {str(folder)!r} holds {', '.join(map(repr, foreign))}, which no hf_bort run recorded writing: "
            "move it away or choose another folder (hf_bort never writes over or deletes what it did not write)."
        )
    _write_written(folder, recorded + [name for name in names if name not in recorded])


def remove_written(folder: str | os.PathLike) -> list[str]:
    """
    Delete the entries of `folder` that [`read_written`] lists (a link is removed, never followed) and return their
    names; everything else in `folder` stays. The record is emptied after the entries are gone.
    """
    folder = Path(folder)
    names = read_written(folder) or []
    removed = []
    for name in names:
        entry = folder / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif os.path.lexists(entry):
            entry.unlink()
        else:
            continue
        removed.append(name)
    _write_written(folder, [])
    return removed


def _write_written(folder: Path, names: list[str]) -> None:
    temporary = folder / f"{WRITTEN_NAME}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps({"written": names}, indent=1) + "\n")
    os.replace(temporary, folder / WRITTEN_NAME)
