"""
The stage driver of `compress`: [`run_stages`] takes a [`CompressionConfig`] and a
[`~hf_bort.compress.tasks.CompressionTask`] and runs the stages in order, each recorded in `OUTPUT/progress.json`
when it finishes (a re-run skips finished stages, and the search resumes at the candidate it was in):

1. `data` — the task loads and checks the splits and the source before any training; the budget is checked.
2. `source` — the teacher (task).
3. `search` — OSE with the task's objective over the candidates within the budget, or the given `candidate`; the
   lowest-error front point is chosen (`front.md`, `front.png`, `choice.json` in `OUTPUT/search/`).
4. `distill` — extraction of the chosen shape, hidden-state distillation (task; on the transfer set's texts too).
5. `task` — the student's training for its task, saved in `OUTPUT/student/` (task).
   `augment` — the task's augmentation round on the task stage's student and record (`augment="auto"` by default:
   rows near its errors labelled by the teacher, a short continuation of task distillation, kept in
   `OUTPUT/student/` only when it passes the dev gate; `compress/augment.py`, `compress/augment_gate.py`); recorded
   as skipped with `augment="off"` or where it does not apply. Once it is recorded, its copy of the task student
   (`OUTPUT/augment/task-student/`) is deleted.
   `qat` — with `qat_steps` > 0, quantization-aware task distillation (simulated full dynamic int8,
   `compress/qat.py`) from the student the `augment` stage left in `OUTPUT/student/` (kept in
   `OUTPUT/student-task/`); the kept weights (plain fp32) replace `OUTPUT/student/` (task); recorded as skipped
   when `qat_steps` is 0.
6. `reload` — the student reloads in a fresh process with the same outputs (task; `reload_check=False` skips it).
7. `latency` — batch-1 latency of source and student, PyTorch and ONNX Runtime, measured in one run.
8. `test` — source and student on the test split: the only time it is read (task).

The driver owns the output folder (checked and locked for the whole run, `hf_bort.compress.run`), progress and
resume, the wall time of each stage, and the report's skeleton; then `compression_report.json` is saved and
`OUTPUT/student/` becomes the folder to publish (`hf_bort.compress.report.publish`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .augment import remove_start_copy
from .checks import budget_check, search_space
from .config import CompressionConfig
from .quiet import quietly
from .report import CompressionResult, front_picks, publish, search_record, speed_record, student_record
from .run import STAGES, Run, output_folder
from .tasks.base import CompressionTask

logger = logging.getLogger(__name__)


@quietly  # no datasets Map bars, no "newly initialized … TRAIN" for the head it trains next (compress/quiet.py)
def run_stages(config: CompressionConfig, task: CompressionTask) -> CompressionResult:
    """
    Runs `task`'s compression with `config` in its output folder, checked and locked until it returns (see the module
    docstring). With `push_to_hub` the token and the Hub are checked first, before any work.
    """
    if config.push_to_hub:  # token and Hub checked before any work
        from ..hub import check_push_ready

        check_push_ready(config.hub_model_id, field="hub_model_id")
    with output_folder(config):  # checked, then this run's alone until it returns
        return _drive(config, task)


class _Stages:
    """The progress bar over the stages, and the timing and recording of one stage."""

    def __init__(self, run: Run, show: bool):
        from tqdm.auto import tqdm

        self.run = run
        self.bar = tqdm(total=len(STAGES), desc="compress", disable=not show)

    def __call__(self, stage: str, work, label: str | None = None) -> dict[str, Any]:
        """Runs `work()` unless `stage` is recorded; records its result and wall time; returns the record."""
        self.bar.set_description(f"compress: {label or stage}")
        if not self.run.done(stage):
            start = time.perf_counter()
            record = work()
            self.run.finish(stage, record, time.perf_counter() - start)
        self.bar.update(1)
        return self.run.record(stage)


def _drive(config: CompressionConfig, task: CompressionTask) -> CompressionResult:
    from ..models.bort.parameters import count_parameters
    from ..ose.costs import encoder_multiply_adds
    from ..ose.space import Candidate
    from . import latency

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    total_start = time.perf_counter()

    # 1. data and source checks, before anything is written
    source_config = task.load()
    budget = budget_check(config, source_config)
    run = Run(config)
    out = run.dir
    fingerprint = task.data.fingerprint()
    run.check_data(fingerprint)
    run.finish("data", {"fingerprint": fingerprint, "sizes": task.data.sizes(), **task.data_record(), **budget}, 0.0)
    stage = _Stages(run, config.show_progress)
    stage.bar.update(1)

    # 2. teacher
    source_record = stage("source", lambda: task.teacher_stage(out))
    task.load_teacher(out, source_record)

    # 3. search (the OSESearch is built on every call: it checks its settings and data)
    search = task.ose_search(
        search_space(config, task.teacher.config), config.search_config(out, len(task.data.validation))
    )
    record = stage("search", lambda: _search(search, config, out, task.search_picks))
    candidate = Candidate.from_dict(record["candidate"])

    # 4. extraction + hidden-state distillation; 5. the student's task training, the augmentation round
    stage("distill", lambda: task.distil(candidate, out, distil_settings(config, out)))
    task_record = stage("task", lambda: task.train_student(out), task.task_stage_label)
    task.augment_record = stage("augment", lambda: task.augment(out, task_record))  # the `qat` stage reads it
    remove_start_copy(out)  # the round's copy of the task student: not needed once the stage is recorded
    stage("qat", lambda: task.quantization_aware(out) if config.qat_steps else {"skipped": "qat_steps=0"})
    task.load_student(out)
    shutil.rmtree(out / "tmp-trainer", ignore_errors=True)

    # 6. reload, 7. latency, 8. test (read once, at the end)
    stage("reload", lambda: task.reload_check(out) if config.reload_check else {"skipped": "reload_check=False"})
    stage("latency", lambda: _latency(config, task, out))
    stage("test", lambda: _test(config, task))
    stage.bar.close()

    # report
    records = run.progress["stages"]
    source_macs = encoder_multiply_adds(task.teacher.config, config.cost_sequence_length)
    student_macs = encoder_multiply_adds(task.student_config, config.cost_sequence_length)
    own = task.report(records)
    test = records["test"]
    report = {
        "settings": config.to_dict(),
        **{key: value for key, value in own.items() if key not in ("source", "student")},
        "data": records["data"],
        "source": {
            **own["source"],
            "parameters": count_parameters(task.teacher.config, task=task.name).total,
            "encoder_multiply_adds": source_macs,
        },
        "search": records["search"],
        "augment": records["augment"],
        "qat": records["qat"],
        "student": {
            **student_record(
                config,
                records,
                out / "student",
                candidate,
                task.student_config,
                parameters=count_parameters(task.student_config, task=task.name).total,
                multiply_adds=student_macs,
                source_multiply_adds=source_macs,
            ),
            **own["student"],
        },
        "reload": records["reload"],
        "latency": records["latency"],
        "speed": _speed(records["latency"], task),
        "test_split_read": "once, after every choice was made" if "skipped" not in test else test["skipped"],
        "wall_s": {**run.progress["wall_s"], "this_call_s": time.perf_counter() - total_start},
        "machine": latency.machine_info(),
    }
    publish(config, out, report)  # the card, report, plot and ONNX in OUTPUT/student; the push when asked
    return CompressionResult(report=report, output_dir=out)


def _search(search, config: CompressionConfig, out: Path, picks: bool) -> dict[str, Any]:
    """
    Stage 3: the given `candidate`, or the search's lowest-error point within the budget; writes `search/front.md`,
    `front.png` and `choice.json`. `picks` adds the front's picks at other multiply-add budgets.
    """
    from ..ose.space import Candidate

    if config.candidate:
        candidate = Candidate.from_key(config.candidate)
        return {"searched": False, "candidate": candidate.to_dict(), "why": "given by `candidate`"}
    result = search.run()
    chosen = result.choose()  # the search ran only over the candidates within the budget
    search_dir = out / "search"
    (search_dir / "front.md").write_text(result.to_markdown())
    plot = None
    try:
        plot = str(result.plot(search_dir / "front.png"))
    except ImportError:
        logger.warning("matplotlib is not installed: no front.png (pip install 'hf-bort[plots]').")
    record = search_record(search, result, chosen, plot)
    if picks:
        record["picks_within_ratio"] = front_picks(result)
    (search_dir / "choice.json").write_text(json.dumps(record, indent=1))
    return record


def _latency(config: CompressionConfig, task: CompressionTask, out: Path) -> dict[str, Any]:
    from . import latency

    return latency.measure_latency(
        task.latency_models(),
        task.tokenizer,
        sequence_length=config.max_length,
        batch_size=1,
        runs=config.latency_runs,
        onnx_dir=out / "onnx" if config.measure_onnx else None,
        seed=config.seed,
        task=task.name,
        **task.latency_options(),
    )


def _speed(latency: dict[str, Any], task: CompressionTask) -> dict[str, Any]:
    """Measured vs analytic speed-up (report key `speed`), the multiply-adds counted at the timed sequence length."""
    from ..ose.costs import encoder_multiply_adds

    if not latency or "sequence_length" not in latency:
        return {}
    length = latency["sequence_length"]
    return speed_record(
        latency,
        encoder_multiply_adds(task.teacher.config, length),
        encoder_multiply_adds(task.student_config, length),
    )


def _test(config: CompressionConfig, task: CompressionTask) -> dict[str, Any]:
    if config.evaluate_test and task.data.test is not None:
        return task.test_record()
    return {"skipped": "no test split" if task.data.test is None else "evaluate_test=False"}


def distil_settings(config: CompressionConfig, out: Path) -> dict[str, Any]:
    """`recipe.extract_and_distil` keywords every task shares (stage 4)."""
    return dict(
        seed=config.seed,
        layer_selection=config.layer_selection,
        distill_epochs=config.distill_epochs,
        distill_learning_rate=config.distill_learning_rate,
        batch_size=config.batch_size,
        work_dir=out / "tmp-trainer",
        show_progress=config.show_progress,
    )
