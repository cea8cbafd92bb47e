"""
`compress`: one call from a source model, a labelled dataset and a budget to a validated, smaller, faster student.

Stages (each recorded in `OUTPUT/progress.json` when it finishes; a re-run skips finished stages and the search
resumes at the candidate it was in):

1. `data` — load and check the splits and the source before any training (columns, classes, labels vs the head,
   budget), carve a stratified dev split when there is none.
2. `source` — fine-tune a pretrained encoder (or take a fine-tuned classifier as it is): the teacher.
3. `search` — OSE with the task surrogate over the candidates within the budget; the lowest-error front point is
   chosen (`front.md`, `front.png`, `choice.json` in `OUTPUT/search/`).
4. `distill` — extraction of the chosen shape from the teacher, hidden-state distillation (training texts and the
   transfer set's, `unlabelled_dataset`).
5. `task` — task distillation (gold rows; transfer rows with the teacher's soft labels only); the student is saved
   in `OUTPUT/student/` (weights, code, tokenizer).
   `augment` — by default (`augment="auto"`, classification of single texts): rows near the task student's errors
   labelled by the teacher, `augment_epochs` more of task distillation with them, and the continued student kept
   only when it beats the task student on dev by more than one standard error (`hf_bort.compress.augment`,
   `augment_gate`); otherwise recorded as skipped, with the reason.
   `qat` — with `qat_steps` > 0, quantization-aware distillation of the kept student.
6. `reload` — the student reloads with plain transformers in a fresh process, same logits.
7. `latency` — batch-1 latency of source and student, PyTorch and ONNX Runtime, measured in one run.
8. `test` — source and student on the test split: the only time it is read.
Each stage is run by the stage driver (`hf_bort.compress.driver.run_stages`), the work of each by the task class
of `config.task` (`hf_bort.compress.tasks`). Then `compression_report.json` holds every setting, every number and
the wall time of each stage, and
`OUTPUT/student/` becomes the folder to publish: its `README.md` model card (from the report), the report, the
front plot and the student's ONNX export beside the weights; with `push_to_hub` it is pushed in one commit.
"""

from __future__ import annotations

from .._lock import is_held
from .checks import source_tokenizer
from .config import CompressionConfig
from .report import AGREEMENT_METRICS, CompressionResult, publish, search_record, student_record
from .run import LOCK_NAME, REPORT_NAME, RUN_ENTRIES, STAGES, output_folder

__all__ = [
    "AGREEMENT_METRICS",
    "LOCK_NAME",
    "REPORT_NAME",
    "RUN_ENTRIES",
    "STAGES",
    "CompressionResult",
    "compress",
    "is_held",
    "output_folder",
    "publish",
    "search_record",
    "source_tokenizer",
    "student_record",
]


def compress(config: CompressionConfig) -> CompressionResult:
    """
    Compresses `config.model` for the labelled `config.dataset` within the budget: see the module docstring for the
    stages and [`CompressionConfig`] for every setting (`task="feature-extraction"`: the embedding-model task of
    `hf_bort.compress.tasks.embedding`, whose student is a sentence-transformers folder; `text_pair_column`: the
    text-pair classifier task of `hf_bort.compress.tasks.pairs`, a cross-encoder). Returns a
    [`CompressionResult`]; the student is in `OUTPUT/student/` and loads with
    `AutoModelForSequenceClassification.from_pretrained` (after `import hf_bort`, or with `trust_remote_code=True`,
    which runs the modeling code saved beside the weights).

    Example:

    ```python
    >>> from hf_bort import CompressionConfig, compress
    >>> result = compress(CompressionConfig(model="bert-dir", dataset="data/", max_cost_ratio=0.25,
    ...                                     output_dir="compressed"))  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    ```
    """
    if not isinstance(config, CompressionConfig):
        raise TypeError(f"`config` must be a CompressionConfig, got {type(config).__name__}.")
    from .driver import run_stages
    from .tasks import task_for

    return run_stages(config, task_for(config))
