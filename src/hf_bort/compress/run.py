"""
The state of one compress run in its output folder: the folder checked and locked for the whole run
([`output_folder`]), the finished stages and their records in `progress.json` ([`Run`]), and what a run writes there
(`RUN_ENTRIES`, recorded before writing so that starting again deletes those and nothing else).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._lock import exclusive_lock, is_held
from .._outputs import (
    WRITTEN_NAME,
    check_not_overlapping,
    check_output_dir,
    claim_entries,
    read_written,
    remove_written,
)
from .config import CompressionConfig

logger = logging.getLogger(__name__)

STAGES = ("data", "source", "search", "distill", "task", "augment", "qat", "reload", "latency", "test")
REPORT_NAME = "compression_report.json"

# What a compress run writes in its output folder (top-level names): recorded in `.hf_bort-written.json` before it
# writes them, so that starting again (`overwrite_output_dir`) deletes these and nothing else.
RUN_ENTRIES = (
    "compression_config.json",
    "compression_config.json.tmp",
    "progress.json",
    "progress.tmp",
    "source-finetuned",
    "search",
    "student-distilled",
    "augment",
    "student",
    "student-task",
    "student-task.tmp",
    "student-augment.tmp",
    "student-qat.tmp",
    "tmp-trainer",
    "onnx",
    REPORT_NAME,
)
LOCK_NAME = ".hf_bort.lock"


@contextlib.contextmanager
def output_folder(config: CompressionConfig) -> Iterator[Path]:
    """
    The output folder of one compress run (both paths), checked and locked for the whole run: a file, a dangling
    link or an unwritable place, and a folder that is, contains or lies inside the source model or the dataset
    (symbolic links resolved) are refused before any work; then `OUTPUT/.hf_bort.lock` is held until the run returns,
    so a second run into the same folder gets `hf_bort.InUseError` at once, before it trains anything. A folder
    this call created and nothing was written to is removed again.
    """
    out = check_output_dir(config.output_dir, "output_dir")
    check_not_overlapping(config.model, out, "model")
    if isinstance(config.dataset, (str, os.PathLike)):
        check_not_overlapping(config.dataset, out, "dataset")
    if isinstance(config.unlabelled_dataset, (str, os.PathLike)):
        check_not_overlapping(config.unlabelled_dataset, out, "unlabelled_dataset")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_NAME
    with exclusive_lock(lock, f"The output folder {str(out)!r}"):
        try:
            yield out
        finally:
            if created and [entry.name for entry in out.iterdir()] == [LOCK_NAME]:  # refused before writing
                lock.unlink()
                with contextlib.suppress(OSError):
                    out.rmdir()


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in `path`, None), or (None, what is wrong with it)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"is not UTF-8 text ({error})"
    if not text.strip():
        return None, "is empty"
    try:
        data = json.loads(text)
    except ValueError as error:
        return None, f"is not valid JSON ({error}; cut short by a kill or edited?)"
    if not isinstance(data, dict):
        return None, f"holds a JSON {type(data).__name__}, not the object compress writes"
    return data, None


def progress_problem(progress: dict[str, Any]) -> str | None:
    for name in ("stages", "wall_s"):
        if not isinstance(progress.get(name, {}), dict):
            return f"has a {name!r} that is not an object"
    stages = progress.get("stages", {})
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        return f"records unknown stages {unknown}"
    broken = [name for name, record in stages.items() if not isinstance(record, dict)]
    if broken:
        return f"has stage records that are not objects: {broken}"
    if "data" in stages and not isinstance(stages["data"].get("fingerprint"), str):
        return "has a 'data' stage without its data fingerprint"
    if "augment" in stages and "task" not in stages:
        return "records the 'augment' stage before 'task' (an earlier hf_bort's order, augmentation before task)"
    return None


class Run:
    """
    The state of one compression run in its (locked, see [`output_folder`]) output folder: finished stages, their
    records, timings. Starting again (other settings or data, or an unreadable run file, with `overwrite_output_dir`)
    deletes only what a compress run recorded writing there (`RUN_ENTRIES`, `hf_bort._outputs.claim_entries`).
    """

    def __init__(self, config: CompressionConfig):
        self.config = config
        self.dir = Path(config.output_dir)
        if not is_held(self.dir / LOCK_NAME):
            raise RuntimeError(f"{self.dir} is not locked: a compress run holds `output_folder(config)` throughout.")
        self.progress_path = self.dir / "progress.json"
        self.config_path = self.dir / "compression_config.json"
        written = read_written(self.dir)  # an unreadable record: an error naming it, nothing deleted
        reason = self._reason_to_start_again(written)
        if reason:
            self.start_again(reason)
        else:
            claim_entries(self.dir, list(RUN_ENTRIES))  # an entry we would write that is not ours: refused
            if not self.config_path.is_file():
                config.save(self.config_path)
            self.progress = read_json_object(self.progress_path)[0] if self.progress_path.is_file() else {}
        self.progress.setdefault("stages", {})
        self.progress.setdefault("wall_s", {})

    def _progress_problem(self) -> str | None:
        if not self.progress_path.is_file():
            return None
        progress, problem = read_json_object(self.progress_path)
        problem = problem or progress_problem(progress)
        return problem and f"{self.progress_path} {problem}: which stages of this run finished is unknown"

    def _refuse(self, problem: str) -> None:
        """Raise `problem` with what to do, unless `overwrite_output_dir` (then the caller starts again)."""
        if self.config.overwrite_output_dir:
            return
        raise ValueError(
            f"{problem}. Use another output_dir, or overwrite_output_dir=True (CLI: --overwrite-output-dir) to start "
            f"this run again: it deletes only what compress recorded writing in {str(self.dir)!r}."
        )

    def _reason_to_start_again(self, written: list[str] | None) -> str | None:
        """Why the folder's run cannot be continued with this config (None: continue, or a fresh folder)."""
        others = [entry for entry in self.dir.iterdir() if entry.name not in (LOCK_NAME, WRITTEN_NAME)]
        if self.config_path.is_file() or self.progress_path.is_file():
            if written is None:  # written by a version that kept no record: nothing can be proven ours
                raise ValueError(
                    f"`output_dir` {str(self.dir)!r} holds a compress run from an hf_bort version that did not record "
                    "the files it wrote, so none of them can be deleted or continued safely: move that folder away "
                    "(or delete it yourself) and run again, or choose another output_dir."
                )
            if not self.config_path.is_file():
                problem = f"{self.config_path} is missing"
            else:
                saved, problem = read_json_object(self.config_path)
                problem = problem and f"{self.config_path} {problem}"
                differences = [] if saved is None else self.config.differences(saved)
                if differences:
                    problem = f"`output_dir` {self.dir} holds a run with other settings ({', '.join(differences)})"
            problem = problem or self._progress_problem()
            if problem:
                self._refuse(problem)
            return problem
        if written:  # ours, killed before its settings were saved
            return "an unfinished start"
        if others and not self.config.overwrite_output_dir:
            raise ValueError(
                f"`output_dir` {str(self.dir)!r} is not empty and holds no compression run: choose an empty or new "
                "folder, or pass overwrite_output_dir=True (compress then writes beside what is there, never over it)."
            )
        return None

    def start_again(self, reason: str) -> None:
        """Delete what compress recorded writing in the folder (nothing else) and start a fresh run there."""
        removed = remove_written(self.dir)
        logger.warning("Starting again in %s (%s): removed %s.", self.dir, reason, removed or "nothing")
        claim_entries(self.dir, list(RUN_ENTRIES))
        self.config.save(self.config_path)
        self.progress = {"stages": {}, "wall_s": {}}

    def check_data(self, fingerprint: str) -> None:
        """A run recorded on other data is refused, or started again with `overwrite_output_dir`."""
        if not self.done("data") or self.record("data")["fingerprint"] == fingerprint:
            return
        problem = (
            f"`output_dir` {str(self.dir)!r} holds a run on other data (fingerprint "
            f"{self.record('data')['fingerprint']} vs {fingerprint})"
        )
        self._refuse(problem)
        self.start_again(problem)

    def done(self, stage: str) -> bool:
        return stage in self.progress["stages"]

    def record(self, stage: str) -> dict[str, Any]:
        return self.progress["stages"][stage]

    def finish(self, stage: str, record: dict[str, Any], wall: float) -> None:
        self.progress["stages"][stage] = record
        self.progress["wall_s"][stage] = self.progress["wall_s"].get(stage, 0.0) + wall
        temporary = self.progress_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.progress, indent=1, default=json_default))
        os.replace(temporary, self.progress_path)


def json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")
