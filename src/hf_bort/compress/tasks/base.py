"""
`CompressionTask`: what a kind of student (classification, embedding, …) gives the stage driver
([`hf_bort.compress.driver.run_stages`]). The driver owns the output folder, progress, resume, timing, the search
stage and the report's skeleton; a task owns its teacher, search objective, distillation, evaluation, reload check
and its own report entries (from which the model card is written). A new kind of student is a new task class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class CompressionTask(Protocol):
    """
    One kind of compression, driven stage by stage by [`run_stages`]. Methods named after a stage run only when that
    stage is not yet recorded in `progress.json`; they return the stage's record (JSON). The `load_*` methods run on
    every call (also when resuming) to bring back what later stages need.

    Attributes a task sets: `tokenizer` (the source's) and `data` (`fingerprint()`, `sizes()`, `validation`, `test`)
    in `load`; `teacher` (the source as a Bort model) in `load_teacher`; `student_config` (the student's model
    config) in `load_student`.
    """

    #: `CompressionConfig.task` value this class implements; count_parameters' and the ONNX export's task.
    name: str
    #: Progress-bar label of the `task` stage.
    task_stage_label: str
    #: Whether the search record also holds the front's picks at other multiply-add budgets.
    search_picks: bool

    def load(self) -> Any:
        """Checks and loads the source and the data before any work; returns the source's transformers config."""

    def data_record(self) -> dict[str, Any]:
        """The `data` stage's task entries (beside the fingerprint, the split sizes and the budget checks)."""

    def teacher_stage(self, out: Path) -> dict[str, Any]:
        """Stage `source`: prepares the teacher (fine-tunes, or checks it); its record."""

    def load_teacher(self, out: Path, record: dict[str, Any]) -> None:
        """Sets `self.teacher` (Bort) from the `source` record."""

    def ose_search(self, space, settings):
        """The `OSESearch` of this task's objective over `space`, with `settings` (the run's `OSEConfig`)."""

    def distil(self, candidate, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
        """Stage `distill`: extraction of `candidate`, hidden-state distillation; saved in `out/student-distilled`."""

    def train_student(self, out: Path) -> dict[str, Any]:
        """Stage `task`: the student's training for its task, saved in `out/student`; its record holds `dev`."""

    def augment(self, out: Path, task_record: dict[str, Any]) -> dict[str, Any]:
        """
        Stage `augment`, after `task` (`task_record` is that stage's record): the augmentation round and its dev gate,
        `out/student` replaced only when the round's student is kept; or a record saying why it was skipped. The
        driver sets `self.augment_record` to this stage's record before `quantization_aware`.
        """

    def quantization_aware(self, out: Path) -> dict[str, Any]:
        """
        Stage `qat` (only with `qat_steps` > 0): quantization-aware training of `out/student`, which it replaces;
        the task stage's student is kept in `out/student-task`.
        """

    def load_student(self, out: Path) -> None:
        """Loads the saved student from `out/student`; sets `self.student_config`."""

    def reload_check(self, out: Path) -> dict[str, Any]:
        """Stage `reload`: reloads the student in a fresh process; raises when it differs."""

    def latency_models(self) -> dict[str, Any]:
        """{"source": model, "student": model} to time (stage `latency`)."""

    def latency_options(self) -> dict[str, Any]:
        """Keywords of `latency.measure_latency` the task's inputs add (e.g. text pairs' validation inputs)."""

    def test_record(self) -> dict[str, Any]:
        """Stage `test` when there is a test split and `evaluate_test`: the test metrics."""

    def report(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """
        The task's report entries: `source` and `student` (merged into the driver's shared entries) and any
        top-level ones (e.g. `task`).
        """
