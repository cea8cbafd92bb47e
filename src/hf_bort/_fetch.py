"""
Downloads one pinned distribution file from the package indexes pip is configured with, without pip building
anything.

`pip download` prepares every sdist it fetches, which runs the sdist's build backend (arbitrary code from the index).
Here pip is only asked for its configuration (`pip config list`: `index-url`, `extra-index-url`, `find-links`,
`no-index`, `cert`, `timeout`, with the `PIP_*` environment variables taking precedence as in pip); the file is looked
up by name in those find-links locations and PEP 503 simple indexes, streamed into a temporary folder and accepted
only when its sha256 equals the pinned one. Nothing from the file is run; the caller reads it as data.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

_MAX_BYTES = 256 * 1024 * 1024
_DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class PinnedFile:
    """A file known by name and sha256; `project` is its index project name (for simple-index lookups)."""

    filename: str
    sha256: str
    project: str | None = None


def sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PipSources:
    """Where pip would look: find-links locations, then indexes (none when `no-index`), plus TLS and timeout."""

    find_links: tuple[str, ...]
    indexes: tuple[str, ...]
    cert: str | None = None
    timeout: float = 60.0


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def pip_sources() -> PipSources:
    """
    pip's effective `download` settings: `pip config list` (files and `PIP_*` variables, as pip reads them), with the
    `PIP_*` environment variables read directly too so a Python without pip still honours them.
    """
    layers: dict[str, dict[str, str]] = {"global": {}, "download": {}, ":env:": {}}
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, _, name = key.rpartition(".")
        if not sep or section not in layers:
            continue
        try:
            layers[section][name] = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            layers[section][name] = raw.strip("'\"")
    for name in ("index-url", "extra-index-url", "find-links", "no-index", "cert", "timeout", "default-timeout"):
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value is not None:
            layers[":env:"][name] = value
    merged = {**layers["global"], **layers["download"], **layers[":env:"]}
    indexes: list[str] = []
    if not _truthy(merged.get("no-index", "")):
        indexes = [merged.get("index-url", _DEFAULT_INDEX)] + merged.get("extra-index-url", "").split()
    timeout = merged.get("timeout", merged.get("default-timeout", "60"))
    return PipSources(
        find_links=tuple(merged.get("find-links", "").split()),
        indexes=tuple(indexes),
        cert=merged.get("cert") or None,
        timeout=float(timeout),
    )


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _normalise(filename: str) -> str:
    return re.sub(r"[-_.]+", "-", filename.lower())


def _canonical_project(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _local_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    if "://" not in location:
        return Path(location)
    return None


def _open(url: str, sources: PipSources):
    context = ssl.create_default_context(cafile=sources.cert) if sources.cert else None
    request = urllib.request.Request(url, headers={"Accept": "text/html", "User-Agent": "hf-bort"})
    return urllib.request.urlopen(request, timeout=sources.timeout, context=context)


def _links(location: str, sources: PipSources) -> list[str]:
    """Every file link at one find-links location or simple-index project page (absolute URLs or paths)."""
    local = _local_path(location)
    if local is not None:
        if local.is_dir():
            page = local / "index.html"
            if not page.is_file():
                return [str(path) for path in sorted(local.iterdir()) if path.is_file()]
            local = page
        if not local.is_file():
            return []
        if not local.name.endswith((".html", ".htm")):
            return [str(local)]
        html, base = local.read_text(encoding="utf-8", errors="replace"), local.resolve().as_uri()
    else:
        with _open(location, sources) as response:
            html, base = response.read().decode("utf-8", errors="replace"), response.geturl()
    parser = _Anchors()
    parser.feed(html)
    return [urllib.parse.urljoin(base, href) for href in parser.hrefs]


def _name_and_hash(link: str) -> tuple[str, str | None]:
    parsed = urllib.parse.urlparse(link)
    if parsed.scheme in ("", "file") or "://" not in link:
        path = parsed.path if parsed.scheme == "file" else link
    else:
        path = parsed.path
    name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    fragment = dict(urllib.parse.parse_qsl(parsed.fragment)) if parsed.scheme else {}
    return name, fragment.get("sha256")


def _copy_into(link: str, target: Path, sources: PipSources) -> None:
    local = _local_path(link)
    if local is not None:
        if local.stat().st_size > _MAX_BYTES:
            raise ValueError(f"larger than {_MAX_BYTES} bytes")
        shutil.copyfile(local, target)
        return
    with _open(link, sources) as response, open(target, "wb") as out:
        size = 0
        for block in iter(lambda: response.read(1 << 20), b""):
            size += len(block)
            if size > _MAX_BYTES:
                raise ValueError(f"larger than {_MAX_BYTES} bytes")
            out.write(block)


@contextlib.contextmanager
def fetch_pinned(pin: PinnedFile, sources: PipSources | None = None) -> Iterator[Path]:
    """
    Yields a local copy of `pin` whose sha256 was checked, in a temporary `hf_bort_dl_*` folder removed on exit.
    Raises `FileNotFoundError` naming every place tried (and any file refused for its hash) when none matches.
    """
    sources = sources or pip_sources()
    locations = list(sources.find_links)
    if pin.project is not None:
        locations += [f"{index.rstrip('/')}/{_canonical_project(pin.project)}/" for index in sources.indexes]
    wanted = _normalise(pin.filename)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hf_bort_dl_") as folder:
        target = Path(folder) / pin.filename
        for location in locations:
            try:
                links = _links(location, sources)
            except (OSError, ValueError) as error:
                notes.append(f"{location}: unreadable ({error})")
                continue
            matched = False
            for link in links:
                name, listed_hash = _name_and_hash(link)
                if _normalise(name) != wanted:
                    continue
                matched = True
                if listed_hash is not None and listed_hash.lower() != pin.sha256:
                    notes.append(f"{link}: listed with sha256 {listed_hash} (refused)")
                    continue
                try:
                    _copy_into(link, target, sources)
                except (OSError, ValueError) as error:
                    notes.append(f"{link}: download failed ({error})")
                    continue
                actual = sha256_of(target)
                if actual == pin.sha256:
                    yield target
                    return
                notes.append(f"{link}: sha256 {actual} (refused)")
                target.unlink()
            if not matched:
                notes.append(f"{location}: no {pin.filename}")
        raise FileNotFoundError(
            f"Could not fetch {pin.filename} with the pinned sha256 {pin.sha256} from pip's find-links and indexes "
            f"({len(locations)} places; is the package index reachable?): " + "; ".join(notes or ["none configured"])
        )
