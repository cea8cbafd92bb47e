"""The defaults and resume rules of `CompressionConfig` (`compress/config.py`), kept apart from its fields."""

from __future__ import annotations

DEFAULT_MAX_COST_RATIO = 0.25
# Per task: the defaults of the student distillation's length, early stopping and loss (embeddings; classification)
EMBEDDING_DEFAULTS = {
    "embedding_min_steps": 1000,
    "embedding_patience": 2,
    "embedding_max_epochs": 10,
    "embedding_loss": "cosine",
}
CLASSIFICATION_DEFAULTS = {"task_patience": 2, "task_max_epochs": 10}
# Settings added later: the value a run saved without them had in effect (text-classification runs)
BEFORE_ADDED = {"task_patience": 0}
# Settings that change no result: a resumed run may differ in these from the run it continues.
RESUME_NEUTRAL = (
    "dataset_name",
    "allow_weak_teacher",  # rerun a run stopped at its weak teacher with it: the fine-tuned teacher is kept
    "max_student_gap",  # a warning's threshold
    "show_progress",
    "threads",
    "overwrite_output_dir",
    "dataset",
    "push_to_hub",
    "hub_model_id",
    "hub_private_repo",
    "hub_revision",
)
# Settings that are paths: a resumed run may spell them differently (`kb`, `./kb/`, `/abs/kb`).
PATH_FIELDS = ("model", "output_dir")
