"""The stage driver (`hf_bort.compress.driver.run_stages`) owns progress, resume, the lock, timing and the report
skeleton: a fake task with no training at all goes through it like the real ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hf_bort import CompressionConfig
from hf_bort._lock import is_held
from hf_bort.compress import driver
from hf_bort.compress.run import LOCK_NAME, STAGES
from hf_bort.compress.tasks import CompressionTask
from hf_bort.compress.tasks.classification import ClassificationTask
from hf_bort.compress.tasks.embedding import EmbeddingTask
from hf_bort.compress.tasks.pairs import PairClassificationTask
from tiny_tasks import fast_settings

# The stage methods: each must run once per finished run, whatever the number of calls.
STAGE_METHODS = ("teacher_stage", "distil", "train_student", "augment", "reload_check")


class Killed(Exception):
    """Raised by the fake task to stand for a kill in a stage."""


class FakeData:
    validation = list(range(32))
    test = None

    def fingerprint(self) -> str:
        return "fake-data"

    def sizes(self) -> dict[str, int]:
        return {"train": 64, "validation": 32}


class FakeTask:
    """A `CompressionTask` that trains nothing: it records which of its methods the driver called."""

    name = "text-classification"
    task_stage_label = "fake"
    search_picks = False

    def __init__(self, config: CompressionConfig, kill_in: str | None = None):
        self.config, self.kill_in, self.calls = config, kill_in, []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.kill_in:
            raise Killed(name)

    def load(self):
        from transformers import AutoConfig

        self._call("load")
        self.data, self.tokenizer = FakeData(), None
        return AutoConfig.from_pretrained(self.config.model)

    def data_record(self) -> dict[str, Any]:
        return {"fake": True}

    def teacher_stage(self, out: Path) -> dict[str, Any]:
        self._call("teacher_stage")
        assert is_held(out / LOCK_NAME)  # the driver holds the folder's lock while a stage runs
        return {"teacher": "fake"}

    def load_teacher(self, out: Path, record: dict[str, Any]) -> None:
        from hf_bort.ose.extract import load_source_as_bort

        self._call("load_teacher")
        assert record == {"teacher": "fake"}  # the record of the call that ran the stage
        self.teacher = load_source_as_bort(self.config.model)

    def ose_search(self, space, settings):
        self._call("ose_search")
        assert settings.output_dir.endswith("search") and len(space) > 0
        return None  # `candidate` is given: the driver does not search

    def distil(self, candidate, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
        self._call("distil")
        (out / "student-distilled").mkdir()
        return {"candidate": candidate.key}

    def train_student(self, out: Path) -> dict[str, Any]:
        self._call("train_student")
        (out / "student").mkdir()
        return {"training": {"steps": 0}}

    def augment(self, out: Path, task_record: dict[str, Any]) -> dict[str, Any]:
        from hf_bort.compress import augment

        self._call("augment")
        assert task_record == {"training": {"steps": 0}}  # the `task` stage ran first: its record is passed
        augment.start_copy(out)  # the round's copy of the task student: deleted by the driver once recorded
        return {"rows_added": 0, "decision": "rejected"}

    def quantization_aware(self, out: Path) -> dict[str, Any]:
        self._call("quantization_aware")
        assert (out / "student").is_dir()
        assert self.augment_record == {"rows_added": 0, "decision": "rejected"}  # set by the driver
        return {"fake_qat": True}

    def load_student(self, out: Path) -> None:
        from hf_bort.ose.costs import candidate_config
        from hf_bort.ose.space import Candidate

        self._call("load_student")
        assert (out / "student").is_dir()
        self.student_config = candidate_config(Candidate.from_key(self.config.candidate), self.teacher.config)

    def reload_check(self, out: Path) -> dict[str, Any]:
        self._call("reload_check")
        return {"ok": True}

    def latency_models(self) -> dict[str, Any]:
        self._call("latency_models")
        return {"source": self.teacher, "student": self.teacher}

    def latency_options(self) -> dict[str, Any]:
        return {}

    def test_record(self) -> dict[str, Any]:
        raise AssertionError("no test split: the driver records the skip itself")

    def report(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"source": {"fake": records["source"]["teacher"]}, "student": {"fake": records["task"]["training"]}}


@pytest.fixture
def published(monkeypatch):
    reports = []
    monkeypatch.setattr(driver, "publish", lambda config, out, report: reports.append(report))
    return reports


def _config(tiny_source, out) -> CompressionConfig:
    settings = fast_settings(candidate="D1-A2-H24-I16-d8", latency_runs=1)
    return CompressionConfig(model=str(tiny_source), dataset="unused", output_dir=str(out), **settings)


def test_the_real_tasks_are_compression_tasks():
    for task_class in (ClassificationTask, EmbeddingTask, PairClassificationTask, FakeTask):
        assert isinstance(task_class.__new__(task_class), CompressionTask), task_class


def test_a_fake_task_runs_through_every_stage_and_gets_the_report_skeleton(tmp_path, tiny_source, published):
    out = tmp_path / "out"
    task = FakeTask(_config(tiny_source, out))
    result = driver.run_stages(task.config, task)
    assert [name for name in task.calls if name in STAGE_METHODS] == list(STAGE_METHODS)
    progress = json.loads((out / "progress.json").read_text())
    assert list(progress["stages"]) == list(STAGES) and set(progress["wall_s"]) == set(STAGES)
    assert progress["stages"]["data"]["fake"] is True and "candidates_in_space" in progress["stages"]["data"]
    assert progress["stages"]["test"] == {"skipped": "no test split"}
    assert progress["stages"]["qat"] == {"skipped": "qat_steps=0"} and "quantization_aware" not in task.calls
    assert list(STAGES).index("augment") == list(STAGES).index("task") + 1  # the round follows task distillation
    assert not (out / "augment" / "task-student").exists()
    report = result.report
    assert published == [report]
    assert list(report) == [
        "settings",
        "data",
        "source",
        "search",
        "augment",
        "qat",
        "student",
        "reload",
        "latency",
        "speed",
        "test_split_read",
        "wall_s",
        "machine",
    ]
    assert report["source"]["fake"] == "fake" and report["source"]["parameters"] > 0
    assert report["student"]["shape"] == "D1-A2-H24-I16-d8" and report["student"]["fake"] == {"steps": 0}
    assert report["student"]["extraction"] == {"candidate": "D1-A2-H24-I16-d8"}
    assert report["search"]["searched"] is False and report["search"]["why"] == "given by `candidate`"
    assert set(report["latency"]["pytorch"]) == {"source", "student"}
    assert not (out / LOCK_NAME).exists() or not is_held(out / LOCK_NAME)  # released on return


def test_resume_is_the_driver_s(tmp_path, tiny_source, published):
    out = tmp_path / "out"
    killed = FakeTask(_config(tiny_source, out), kill_in="augment")
    with pytest.raises(Killed):
        driver.run_stages(killed.config, killed)
    recorded = set(json.loads((out / "progress.json").read_text())["stages"])
    assert recorded == {"data", "source", "search", "distill", "task"}
    again = FakeTask(_config(tiny_source, out))
    driver.run_stages(again.config, again)
    # finished stages are not run again; what later stages need is loaded on every call
    assert [name for name in again.calls if name in STAGE_METHODS] == ["augment", "reload_check"]
    assert {"load", "load_teacher", "ose_search", "load_student"} <= set(again.calls)
    third = FakeTask(_config(tiny_source, out))
    driver.run_stages(third.config, third)
    assert not [name for name in third.calls if name in STAGE_METHODS]
    assert published[-1]["wall_s"].keys() == published[0]["wall_s"].keys()


def test_the_qat_stage_runs_with_qat_steps_after_task_and_resumes(tmp_path, tiny_source, published):
    out = tmp_path / "out"
    config = _config(tiny_source, out)
    config.qat_steps = 3
    killed = FakeTask(config, kill_in="quantization_aware")
    with pytest.raises(Killed):
        driver.run_stages(config, killed)
    assert killed.calls.index("quantization_aware") > killed.calls.index("train_student")
    assert "qat" not in json.loads((out / "progress.json").read_text())["stages"]
    again = FakeTask(config)
    driver.run_stages(config, again)
    assert [n for n in again.calls if n in (*STAGE_METHODS, "quantization_aware")] == [
        "quantization_aware",
        "reload_check",
    ]
    assert published[-1]["qat"] == {"fake_qat": True}


def test_a_run_recorded_in_the_earlier_stage_order_is_not_continued():
    from hf_bort.compress.run import progress_problem

    earlier = {"stages": {"data": {"fingerprint": "x"}, "distill": {}, "augment": {"rows_added": 3}}}
    assert "before 'task'" in progress_problem(earlier)
    assert progress_problem({"stages": {"data": {"fingerprint": "x"}, "task": {}, "augment": {}}}) is None


def test_a_task_that_fails_its_checks_leaves_no_folder(tmp_path, tiny_source, published):
    out = tmp_path / "out"
    task = FakeTask(_config(tiny_source, out), kill_in="load")
    with pytest.raises(Killed):
        driver.run_stages(task.config, task)
    assert not out.exists() and published == []
