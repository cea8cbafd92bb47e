"""Reading users' text files (datasets, text lists): bytes that are not UTF-8 are an error naming the file and line,
never a bare "'utf-8' codec can't decode byte …" from deep inside a loader."""

from __future__ import annotations

import os
from pathlib import Path


def _message(what: str, path: str | os.PathLike, line: int, column: int, error: UnicodeDecodeError) -> str:
    byte = error.object[error.start : error.start + 1].hex()
    return (
        f"{what}: {str(path)!r} is not valid UTF-8: line {line}, byte {column} (0x{byte}: {error.reason}). "
        "Save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
    )


def check_utf8(path: str | os.PathLike, what: str) -> None:
    """Raises `ValueError` naming `what`, the file, the line and the byte when `path` is not valid UTF-8 (read one
    line at a time: a newline byte never occurs inside a UTF-8 character, so each line decodes on its own)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(_message(what, path, number, error.start + 1, error)) from None


def read_utf8(path: str | os.PathLike, what: str) -> str:
    """The text of `path`; not valid UTF-8 raises `ValueError` as [`check_utf8`] does."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(_message(what, path, line, column, error)) from None
