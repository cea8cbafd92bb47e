"""The search's JSONL store: one record per evaluation, appended as each candidate finishes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .distributed import rank_world
from .results import CandidateResult

logger = logging.getLogger(__name__)

STORE_NAME = "candidates.jsonl"


class CandidateStore:
    """
    The JSONL store: one record per evaluation, appended atomically. On open a torn last line is dropped, and a line
    that is not a valid evaluation of this run (bad JSON, a missing field, a wrong type, an impossible value such as a
    NaN error or zero parameters) is skipped with a warning naming the file and the line, so that candidate is
    evaluated again instead of a corrupted value winning the comparison.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self, run_id: str) -> dict[tuple[str, int], CandidateResult]:
        if not self.path.is_file():
            return {}
        raw = self.path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        records: dict[tuple[str, int], CandidateResult] = {}
        for number, line in enumerate(raw[:good_end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("Ignoring unreadable line %d of %s.", number, self.path)
                continue
            if not isinstance(record, dict):
                logger.warning("Ignoring line %d of %s: not a JSON object (%s).", number, self.path, type(record))
                continue
            if record.get("run_id") == run_id:
                try:
                    result = CandidateResult.from_record(record)
                except (KeyError, TypeError, ValueError) as error:  # a hand-edited or corrupted record
                    logger.warning(
                        "Ignoring line %d of %s: not a valid evaluation (%s: %s); the candidate is evaluated again.",
                        number,
                        self.path,
                        type(error).__name__,
                        error,
                    )
                    continue
                records[result.candidate.key, result.steps] = result
        if good_end < len(raw):
            logger.warning("Ignoring the torn last line of %s (an interrupted write).", self.path)
            if rank_world()[0] == 0:
                with open(self.path, "r+b") as handle:
                    handle.truncate(good_end)
        return records

    def append(self, result: CandidateResult, run_id: str) -> None:
        line = (json.dumps(result.to_record(run_id), sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write with O_APPEND: whole lines even with several processes
        finally:
            os.close(fd)
