"""
The checks of `CompressionConfig` (`compress/config.py`), run by its `__post_init__`: every bad setting is a clear
error naming its field when the config is built, before any data is read or any model trained.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from ..ose.config import check_setting, mirrored_fields

if TYPE_CHECKING:
    from .config import CompressionConfig

TASKS = ("text-classification", "feature-extraction")
AUGMENT_MODES = ("auto", "always", "off")


def check_config(config: CompressionConfig) -> None:
    """Checks every setting of `config` (the budget default already applied); normalises `label_names` to a list."""
    if not isinstance(config.model, (str, os.PathLike)) or not str(config.model).strip():
        raise ValueError(f"`model` must be a path or Hub id, got {config.model!r}.")
    if config.dataset_name is not None and (
        not isinstance(config.dataset_name, str) or not config.dataset_name.strip()
    ):
        raise ValueError(f"`dataset_name` must be a non-empty string or None, got {config.dataset_name!r}.")
    if config.dataset is None:
        raise ValueError("`dataset` is required: a folder or file of CSV/JSON/JSONL, a Hub name, or a DatasetDict.")
    if config.latency_cache is not None and (
        not isinstance(config.latency_cache, (str, os.PathLike)) or not str(config.latency_cache).strip()
    ):
        raise ValueError(f"`latency_cache` must be a file path or None, got {config.latency_cache!r}.")
    for name in ("text_column", "label_column", "train_split", "validation_split", "test_split", "output_dir"):
        value = getattr(config, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    if config.task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {config.task!r}.")
    if config.task == "text-classification" and config.text_column == config.label_column:
        raise ValueError("`text_column` and `label_column` must differ.")
    if config.text_pair_column is not None:
        _check_pair_column(config)
    for name in ("max_cost_ratio", "max_latency_ratio"):
        value = getattr(config, name)
        if value is not None and not (_number(value) and 0 < value <= 1):
            raise ValueError(f"`{name}` must be a number in (0, 1], got {value!r}.")
    positive = (
        "max_latency_ms",
        "finetune_learning_rate",
        "distill_learning_rate",
        "task_learning_rate",
        "qat_learning_rate",
        "temperature",
    )
    for name in positive:
        value = getattr(config, name)
        if value is not None and not (_number(value) and value > 0):
            raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    for name in ("finetune_epochs", "distill_epochs", "alpha_ce", "alpha_kd", "weak_teacher_margin"):
        value = getattr(config, name)
        if not (_number(value) and value >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if not (_number(config.task_epochs) and config.task_epochs > 0):
        raise ValueError(f"`task_epochs` must be > 0 (the student's task training), got {config.task_epochs!r}.")
    if config.task == "text-classification" and config.alpha_ce + config.alpha_kd <= 0:
        raise ValueError("`alpha_ce` + `alpha_kd` must be > 0.")
    for name in ("finetune_min_steps", "finetune_patience"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
    _check_qat(config)
    _check_embedding_steps(config)
    _check_task_stopping(config)
    _check_embedding_loss(config)
    if config.best_checkpoint_metric not in ("macro_f1", "accuracy"):
        raise ValueError(
            f"`best_checkpoint_metric` must be 'macro_f1' or 'accuracy', got {config.best_checkpoint_metric!r}."
        )
    if not isinstance(config.allow_weak_teacher, bool):
        raise ValueError(f"`allow_weak_teacher` must be True or False, got {config.allow_weak_teacher!r}.")
    if config.search_gold_weight is not None and not (
        _number(config.search_gold_weight) and 0 <= config.search_gold_weight <= 1
    ):
        raise ValueError(
            f"`search_gold_weight` must be a number in [0, 1] or None, got {config.search_gold_weight!r}."
        )
    if not (_number(config.max_student_gap) and 0 <= config.max_student_gap <= 1):
        raise ValueError(f"`max_student_gap` must be a number in [0, 1], got {config.max_student_gap!r}.")
    _check_label_names(config)
    if not (_number(config.validation_fraction) and 0 < config.validation_fraction < 1):
        raise ValueError(f"`validation_fraction` must be in (0, 1), got {config.validation_fraction!r}.")
    ints = (
        "max_length",
        "cost_sequence_length",
        "batch_size",
        "search_eval_rows",
        "latency_runs",
    )
    for name in ints:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if config.threads is not None and (
        isinstance(config.threads, bool) or not isinstance(config.threads, int) or config.threads <= 0
    ):
        raise ValueError(f"`threads` must be a positive integer or None, got {config.threads!r}.")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"`seed` must be an integer >= 0, got {config.seed!r}.")
    for name, setting in mirrored_fields(type(config)).items():
        check_setting(setting, getattr(config, name), name)
    if config.candidate is not None:
        from ..ose.space import Candidate

        Candidate.from_key(config.candidate)
    if not isinstance(config.push_to_hub, bool):
        raise ValueError(f"`push_to_hub` must be True or False, got {config.push_to_hub!r}.")
    if config.push_to_hub:
        from ..hub import check_repo_id

        if config.hub_model_id is None:
            raise ValueError("`push_to_hub` needs `hub_model_id` (the Hub repository, e.g. 'user/model').")
        check_repo_id(config.hub_model_id, "hub_model_id")
    else:
        given = [n for n in ("hub_model_id", "hub_private_repo", "hub_revision") if getattr(config, n) is not None]
        if given:
            raise ValueError(f"{', '.join(f'`{n}`' for n in given)} given without `push_to_hub=True`.")
    if config.hub_private_repo is not None and not isinstance(config.hub_private_repo, bool):
        raise ValueError(f"`hub_private_repo` must be True, False or None, got {config.hub_private_repo!r}.")
    if config.hub_revision is not None and (
        not isinstance(config.hub_revision, str) or not config.hub_revision.strip()
    ):
        raise ValueError(f"`hub_revision` must be a non-empty branch name, got {config.hub_revision!r}.")
    if config.task == "feature-extraction":
        try:
            import sentence_transformers  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "task='feature-extraction' needs sentence-transformers: "
                'pip install "hf-bort[sentence-transformers]".'
            ) from error
    _check_transfer_and_augmentation(config)
    needs_ort = config.measure_onnx or (
        config.latency_engine == "onnxruntime"
        and (config.max_latency_ratio is not None or config.max_latency_ms is not None)
    )
    if needs_ort:
        try:
            import onnxruntime  # noqa: F401
            import optimum.exporters.onnx  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "ONNX Runtime latency (measure_onnx=True or a latency budget with latency_engine='onnxruntime') "
                'needs the onnx extra: pip install "hf-bort[onnx]"; or set measure_onnx=False / '
                "latency_engine='pytorch'."
            ) from error


def _check_label_names(config: CompressionConfig) -> None:
    if config.label_names_column is not None:
        if not isinstance(config.label_names_column, str) or not config.label_names_column.strip():
            raise ValueError(f"`label_names_column` must be a non-empty string, got {config.label_names_column!r}.")
        if config.label_names_column in (config.text_column, config.label_column):
            raise ValueError("`label_names_column` must differ from `text_column` and `label_column`.")
        if config.label_names is not None:
            raise ValueError("Give `label_names_column` or `label_names`, not both.")
    if config.label_names is not None:
        names = config.label_names
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise ValueError(f"`label_names` must be a list of class names, got {names!r}.")
        if len(names) < 2 or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"`label_names` must hold at least two non-empty strings, got {names!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"`label_names` must not repeat a name, got {names!r}.")
        config.label_names = list(names)


def _check_transfer_and_augmentation(config: CompressionConfig) -> None:
    source = config.unlabelled_dataset
    if source is not None and not isinstance(source, (str, os.PathLike)) and not _in_memory_dataset(source):
        raise ValueError(
            "`unlabelled_dataset` must be a path, a Hub dataset name, a DatasetDict or a Dataset, got "
            f"{type(source).__name__}."
        )
    if isinstance(source, (str, os.PathLike)) and not str(source).strip():
        raise ValueError("`unlabelled_dataset` must be a non-empty path or name, or None.")
    column = config.unlabelled_text_column
    if column is not None and (not isinstance(column, str) or not column.strip()):
        raise ValueError(f"`unlabelled_text_column` must be a non-empty string or None, got {column!r}.")
    if column is not None and source is None:
        raise ValueError("`unlabelled_text_column` given without `unlabelled_dataset`.")
    if config.text_pair_column is not None and source is not None:
        raise ValueError(
            "`unlabelled_dataset` takes single texts and is not supported with `text_pair_column` (text pairs): "
            "leave it unset for a cross-encoder."
        )
    _check_augmentation(config)


def augmentation_unavailable(config: CompressionConfig) -> str | None:
    """Why the augmentation round does not apply to `config`'s task (None: it applies)."""
    if config.task != "text-classification":
        return f"augmentation needs task='text-classification' (the teacher labels classes), not {config.task!r}"
    if config.text_pair_column is not None:
        return "augmentation takes single texts and is not supported with `text_pair_column` (text pairs)"
    return None


def _check_augmentation(config: CompressionConfig) -> None:
    if config.augment not in AUGMENT_MODES:
        raise ValueError(f"`augment` must be one of {AUGMENT_MODES}, got {config.augment!r}.")
    budget = config.augment_budget
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValueError(
            f"`augment_budget` must be an integer >= 1 (teacher calls), or None for the default size, got "
            f"{budget!r}; use augment='off' to switch augmentation off."
        )
    epochs = config.augment_epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`augment_epochs` must be an integer >= 1, got {epochs!r}.")
    given = [name for name in ("augment_budget", "augment_epochs") if getattr(config, name) != _DEFAULTS[name]]
    if config.augment == "off" and given:
        raise ValueError(f"{', '.join(f'`{n}`' for n in given)} given with augment='off', which runs no round.")
    why_not = augmentation_unavailable(config)
    if why_not and config.augment == "always":
        raise ValueError(
            f"`augment`='always' cannot run: {why_not}. Use augment='off' (or 'auto', recorded as skipped)."
        )
    if why_not and given:
        raise ValueError(f"{', '.join(f'`{n}`' for n in given)} given, but {why_not}.")


_DEFAULTS = {"augment_budget": None, "augment_epochs": 1}


def augment_budget(config: CompressionConfig, gold_rows: int) -> int:
    """`augment_budget`, or by default min(1000, max(64, round(0.1 × gold training rows)))."""
    if config.augment_budget is not None:
        return config.augment_budget
    return min(1000, max(64, round(0.1 * gold_rows)))


def _check_pair_column(config: CompressionConfig) -> None:
    """`text_pair_column`: a non-empty string other than the text and label columns, for classification only."""
    column = config.text_pair_column
    if not isinstance(column, str) or not column.strip():
        raise ValueError(f"`text_pair_column` must be a non-empty string or None, got {column!r}.")
    if config.task != "text-classification":
        raise ValueError(
            f"`text_pair_column` is for task='text-classification' (cross-encoders); task={config.task!r} embeds "
            "single texts."
        )
    for other in ("text_column", "label_column"):
        if column == getattr(config, other):
            raise ValueError(f"`text_pair_column` {column!r} must differ from `{other}`.")


def _check_qat(config: CompressionConfig) -> None:
    if config.qat_target not in ("teacher", "self"):  # compress/qat.py QAT_TARGETS (not imported: torch)
        raise ValueError(f"`qat_target` must be 'teacher' or 'self', got {config.qat_target!r}.")
    steps = config.qat_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"`qat_steps` must be an integer >= 0 (0: no quantization-aware stage), got {steps!r}.")
    if steps > 0 and config.task != "text-classification":
        raise ValueError(
            f"`qat_steps` > 0 needs task='text-classification': the quantization-aware stage distils class logits "
            f"and is not supported for task={config.task!r}."
        )


def _refuse_outside(config: CompressionConfig, names: tuple[str, ...], task: str, stage: str, hint: str) -> bool:
    """Refuses any of `names` set when `config.task` is not `task` (they belong to its `stage`); True when it is."""
    if config.task == task:
        return True
    for name in names:
        if getattr(config, name) is not None:
            raise ValueError(
                f"`{name}` applies to task={task!r} only ({stage}), got {getattr(config, name)!r} with "
                f"task={config.task!r}: {hint}"
            )
    return False


def _check_epochs_and_patience(config: CompressionConfig, names: tuple[str, ...], least: tuple[int, ...]) -> None:
    """`names` integers >= `least`; the last of them a longest run in epochs, >= `task_epochs`."""
    for name, smallest in zip(names, least, strict=True):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            raise ValueError(f"`{name}` must be an integer >= {smallest}, got {value!r}.")
    longest = names[-1]
    if getattr(config, longest) < config.task_epochs:
        raise ValueError(
            f"`{longest}` ({getattr(config, longest)}) must be >= `task_epochs` ({config.task_epochs}): the epochs "
            "asked for always run."
        )


def _check_embedding_steps(config: CompressionConfig) -> None:
    """The length and early stopping of embedding distillation: set for task='feature-extraction' only."""
    names = ("embedding_min_steps", "embedding_patience", "embedding_max_epochs")
    if _refuse_outside(config, names, "feature-extraction", "embedding distillation", "leave it unset."):
        _check_epochs_and_patience(config, names, (0, 0, 1))


def _check_task_stopping(config: CompressionConfig) -> None:
    """The early stopping and longest run of task distillation: set for task='text-classification' only."""
    names = ("task_patience", "task_max_epochs")
    hint = "leave it unset (embedding distillation has embedding_patience / embedding_max_epochs)."
    if _refuse_outside(config, names, "text-classification", "task distillation", hint):
        _check_epochs_and_patience(config, names, (0, 1))


def _check_embedding_loss(config: CompressionConfig) -> None:
    """`embedding_loss` and its similarity weight: task='feature-extraction' only, the weight with the term only."""
    from ..ose.embedding import EMBEDDING_LOSSES

    names = ("embedding_loss", "embedding_similarity_weight")
    if not _refuse_outside(config, names, "feature-extraction", "embedding distillation", "leave it unset."):
        return
    if config.embedding_loss not in EMBEDDING_LOSSES:
        raise ValueError(f"`embedding_loss` must be one of {list(EMBEDDING_LOSSES)}, got {config.embedding_loss!r}.")
    weight = config.embedding_similarity_weight
    if config.embedding_loss == "cosine":
        if weight is not None:
            raise ValueError(
                f"`embedding_similarity_weight` applies to embedding_loss='cosine+similarity' only, got {weight!r} "
                "with embedding_loss='cosine': leave it unset or choose 'cosine+similarity'."
            )
        return
    if not (_number(weight) and weight > 0):
        raise ValueError(f"`embedding_similarity_weight` must be a finite number > 0, got {weight!r}.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _in_memory_dataset(value: Any) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(value, (datasets.Dataset, datasets.DatasetDict))
