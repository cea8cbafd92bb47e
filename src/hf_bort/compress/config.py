"""`CompressionConfig`: every setting of `hf_bort.compress`, for the Python API and `hf-bort compress` alike."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..ose.config import OSEConfig, mirrored_fields, ose_field, parse_axis
from .config_checks import AUGMENT_MODES, TASKS, check_config
from .config_defaults import (
    BEFORE_ADDED,
    CLASSIFICATION_DEFAULTS,
    DEFAULT_MAX_COST_RATIO,
    EMBEDDING_DEFAULTS,
    PATH_FIELDS,
    RESUME_NEUTRAL,
)


@dataclass
class CompressionConfig:
    """
    Settings of [`compress`]: a source model, a labelled text-classification dataset and a budget in; a smaller,
    validated student out. The same dataclass drives `hf-bort compress` (one flag per field, `--max-cost-ratio 0.25`
    style) and is saved as `compression_config.json` in the output folder.

    Recipe (the defaults, documented in docs/compress.md): a pretrained encoder is first fine-tuned (AdamW, lr 5e-5,
    batch 32, 3 epochs but at least 250 steps, linear decay, no warm-up; evaluated on dev every epoch, stopped after 5
    epochs without a better dev macro-F1, the best epoch kept); a fine-tuned `*ForSequenceClassification` is used as
    the teacher as it is. A teacher not clearly above the majority class on dev is an error (`allow_weak_teacher`).
    The OSE search trains each candidate with task distillation and ranks by dev KL to the teacher; the
    lowest-error front point within the budget is extracted, distilled on hidden states (2 epochs, lr 1e-4) and then
    with task distillation (3 epochs, then until 2 without a better dev score, ≤ 10; lr 5e-5, 0.5·CE + 0.5·T²·KL, T =
    2; the best dev epoch kept); dev metrics, then test metrics once.
    An `unlabelled_dataset` (transfer set) joins both distillations with the teacher's soft labels. After task
    distillation, `augment="auto"` (the default) runs one augmentation round (rows near the student's errors labelled
    by the teacher, then `augment_epochs` of task distillation) and keeps its student only when it beats the task
    student on dev by more than one standard error (`compress/augment_gate.py`).

    With `task="feature-extraction"` the source is a local sentence-transformers folder and the dataset needs only a
    text column: no fine-tuning; the search ranks candidates by the dev cosine distance of their sentence embeddings
    to the teacher's; the student is distilled on hidden states (`distill_*`) and then on the teacher's sentence
    embeddings (`task_epochs`, `task_learning_rate`, `embedding_loss`: 1 − cos, or with "cosine+similarity" plus
    `embedding_similarity_weight` × the mean squared difference of the in-batch cosine-similarity matrices; at least
    `embedding_min_steps` steps, the best dev epoch kept, early stopping after `embedding_patience` epochs, at most
    `embedding_max_epochs`) and saved as a sentence-transformers folder.

    With `text_pair_column` the inputs are text pairs (a cross-encoder): every step feeds (text, text_pair) to the
    tokenizer as one pair (docs/compress.md, "Text pairs").

    Example:

    ```python
    >>> from hf_bort import CompressionConfig, compress
    >>> config = CompressionConfig(model="path/to/encoder", dataset="data/", max_cost_ratio=0.25,
    ...                            output_dir="compressed")  # doctest: +SKIP
    >>> result = compress(config)  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    ```
    """

    model: str = field(
        metadata={
            "help": "Source: a path or Hub id of a pretrained encoder or a fine-tuned *ForSequenceClassification."
        }
    )
    dataset: str = field(
        default=None,
        metadata={
            "help": "Labelled data: a folder with train/validation/test CSV, JSON or JSONL files (or a saved "
            "DatasetDict), one such file (train only), or a Hub dataset name. In Python also a DatasetDict or Dataset."
        },
    )
    dataset_name: str = field(
        default=None,
        metadata={
            "help": "How the report and model card name the data (default: the `dataset` path or Hub id; give it "
            "for an in-memory dataset)."
        },
    )
    task: str = field(
        default="text-classification",
        metadata={
            "help": "What the student is for. 'text-classification': a labelled dataset, task distillation, accuracy. "
            "'feature-extraction': a sentence-transformers source folder and texts only (no labels read): the "
            "student is distilled on the teacher's sentence embeddings and written as a sentence-transformers folder; "
            "agreement (mean cosine, nearest-neighbour agreement, Spearman of pairwise similarities) is reported.",
            "choices": list(TASKS),
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the input text."})
    text_pair_column: str = field(
        default=None,
        metadata={
            "help": "Column holding the second text of a pair (NLI, paraphrase, question pairs: a cross-encoder). "
            "Given, every step feeds (text, text_pair) to the tokenizer as one input; task='text-classification' "
            "only. Default: single texts."
        },
    )
    label_column: str = field(
        default="label",
        metadata={"help": "Column holding the class label (ids or names); not read when task='feature-extraction'."},
    )
    label_names_column: str = field(
        default=None,
        metadata={
            "help": "Column holding each row's class name beside integer ids in `label_column` (e.g. 'label_text'): "
            "the names of id2label, the report and the card; each id must have one name in every split."
        },
    )
    label_names: list[str] = field(
        default=None,
        metadata={
            "help": "Class names by id (0, 1, …) for integer labels without a ClassLabel feature or a name column."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Name of the training split."})
    validation_split: str = field(
        default="validation",
        metadata={"help": "Name of the dev split (model choice); carved from train, stratified, when missing."},
    )
    test_split: str = field(
        default="test", metadata={"help": "Name of the test split, read once at the end; skipped when missing."}
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of train carved out as the dev split when there is none."}
    )
    output_dir: str = field(default="compressed", metadata={"help": "Output folder (resumable)."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start again in an output folder that holds a run with other settings or data, or unreadable run "
            "files: only what compress recorded writing there (.hf_bort-written.json) is deleted. In a non-empty "
            "folder without a run, write beside what is there (never over it)."
        },
    )
    max_cost_ratio: float = field(
        default=None,
        metadata={
            "help": "Budget: at most this fraction of the source's encoder multiply-adds (default 0.25 when no "
            "budget is given)."
        },
    )
    max_latency_ratio: float = field(
        default=None,
        metadata={"help": "Budget: at most this fraction of the source's latency, measured on this CPU."},
    )
    max_latency_ms: float = field(
        default=None, metadata={"help": "Budget: at most this many milliseconds per forward pass on this CPU."}
    )
    latency_engine: str = ose_field(
        "latency_engine", default="onnxruntime", help="Also the engine of the latency budgets."
    )
    latency_cache: str = field(
        default=None,
        metadata={
            "help": "The per-machine latency table a latency budget reads and times into (default: latency.json in "
            "hf_bort's cache folder, $HF_BORT_CACHE or ~/.cache/hf_bort, shared by every run on this machine). "
            "Keyed by CPU model and flags, cores, threads, torch version, engine, shape, sequence length and batch."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per text (training and evaluation)."})
    cost_sequence_length: int = field(
        default=128, metadata={"help": "Sequence length at which multiply-adds (and search latencies) are counted."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of every random choice (splits, batches, initialisation)."})
    # ------------------------------------------------------------------------------------------------- fine-tuning
    finetune_epochs: float = field(
        default=3.0,
        metadata={"help": "Epochs to fine-tune a pretrained source (more when they give under finetune_min_steps)."},
    )
    finetune_min_steps: int = field(
        default=250,
        metadata={
            "help": "At least this many optimizer steps of fine-tuning: the epochs are raised to "
            "ceil(finetune_min_steps / ceil(train rows / batch_size)) when finetune_epochs give fewer (256 rows, "
            "batch 32: 32 epochs); 0 keeps finetune_epochs."
        },
    )
    finetune_patience: int = field(
        default=5,
        metadata={
            "help": "Stop fine-tuning when this many epochs in a row, after the first finetune_epochs, did not "
            "improve the dev best_checkpoint_metric (the best epoch is kept either way); 0: no early stopping."
        },
    )
    best_checkpoint_metric: str = field(
        default="macro_f1",
        metadata={
            "help": "Dev metric that picks the epoch kept by fine-tuning and task distillation (evaluated every "
            "epoch).",
            "choices": ["macro_f1", "accuracy"],
        },
    )
    weak_teacher_margin: float = field(
        default=0.1,
        metadata={
            "help": "A teacher whose dev macro-F1 is less than this above the majority-class baseline's is weak: an "
            "error before the search unless allow_weak_teacher."
        },
    )
    allow_weak_teacher: bool = field(
        default=False,
        metadata={
            "help": "Go on with a weak teacher: the report, card and CLI output carry a warning and the search's ê "
            "counts the gold dev labels (search_gold_weight)."
        },
    )
    finetune_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of fine-tuning."})
    batch_size: int = field(default=32, metadata={"help": "Batch size of fine-tuning and distillation."})
    # ------------------------------------------------------------------------------------------------------ search
    candidate: str = field(
        default=None,
        metadata={
            "help": "Skip the search and extract this shape (a key like D6-A3-H384-I384-d32), e.g. for baselines."
        },
    )
    # The search settings below mirror OSEConfig's fields (help, choices and checks from there; compress's names and
    # defaults here): `search_config()` builds the search's OSEConfig from them.
    epsilon: float = ose_field("epsilon", default=0.25)
    search_base_steps: int = ose_field("base_steps", default=32)
    search_interval: int = ose_field("interval_size", default=16)
    search_batch_size: int = ose_field("batch_size", default=16)
    search_learning_rate: float = ose_field("learning_rate", default=1e-4)
    search_eval_rows: int = field(default=256, metadata={"help": "Dev rows ê is measured on."})
    search_gold_weight: float = field(
        default=None,
        metadata={
            "help": "Weight w of the gold dev labels in the search's ê = (1 - w)·KL(teacher ‖ student) + w·CE(gold) "
            "(default: 0 with a sound teacher, 1 with a weak one: its KL would reward copying it)."
        },
    )
    search_layers: str = ose_field("layers")
    search_heads: str = ose_field("heads")
    search_hidden: str = ose_field("hidden")
    search_intermediate: str = ose_field("intermediate")
    layer_selection: str = ose_field("layer_selection", help="Also the student's, in extraction.")
    # ------------------------------------------------------------------------------------------------ distillation
    distill_epochs: float = field(default=2.0, metadata={"help": "Epochs of hidden-state distillation (0: skip)."})
    distill_learning_rate: float = field(
        default=1e-4, metadata={"help": "Learning rate of hidden-state distillation."}
    )
    task_epochs: float = field(default=3.0, metadata={"help": "Epochs of task distillation of the student."})
    embedding_min_steps: int = field(
        default=None,
        metadata={
            "help": "task='feature-extraction' only (an error otherwise): at least this many optimizer steps of "
            "embedding distillation, the epochs raised to ceil(embedding_min_steps / ceil(texts / batch_size)) when "
            "task_epochs give fewer (capped by embedding_max_epochs). Default 1000: about the earlier fixed 3 epochs "
            "on a 10k-text set at batch 32 (313 steps per epoch: 4 epochs), and enough steps on smaller sets; 0 "
            "keeps task_epochs."
        },
    )
    embedding_patience: int = field(
        default=None,
        metadata={
            "help": "task='feature-extraction' only (an error otherwise): after the minimum epochs, stop embedding "
            "distillation when this many epochs in a row did not improve the dev spearman_pairwise (the best epoch "
            "is kept either way; the learning rate then decays linearly over embedding_max_epochs). Default 2; 0: "
            "no early stopping, exactly the minimum epochs, the decay over them."
        },
    )
    embedding_max_epochs: int = field(
        default=None,
        metadata={
            "help": "task='feature-extraction' only (an error otherwise): most epochs of embedding distillation, "
            "bounding its time (also over embedding_min_steps); must be >= task_epochs. Default 10."
        },
    )
    task_patience: int = field(
        default=None,
        metadata={
            "help": "task='text-classification' only (an error otherwise): stop task distillation when this many "
            "epochs in a row after the first task_epochs did not improve the dev best_checkpoint_metric (the best "
            "epoch is kept either way; the learning rate then decays linearly over task_max_epochs). Default 2; 0: "
            "exactly task_epochs, the decay over them."
        },
    )
    task_max_epochs: int = field(
        default=None,
        metadata={
            "help": "task='text-classification' only: most epochs of task distillation with task_patience > 0 (the "
            "learning rate decays over them); >= task_epochs. Default 10."
        },
    )
    embedding_loss: str = field(
        default=None,
        metadata={
            "help": "task='feature-extraction' only: the loss of embedding distillation, 'cosine' (default: "
            "1 - cos to the teacher's embedding) or 'cosine+similarity' (plus embedding_similarity_weight x the mean "
            "squared difference of the student's and the teacher's in-batch cosine-similarity matrices, off-diagonal)."
        },
    )
    embedding_similarity_weight: float = field(
        default=None,
        metadata={"help": "With embedding_loss='cosine+similarity' only: the weight of its similarity term (1.0)."},
    )
    task_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of task distillation."})
    alpha_ce: float = field(default=0.5, metadata={"help": "Weight of the label cross-entropy in task distillation."})
    alpha_kd: float = field(default=0.5, metadata={"help": "Weight of T²·KL to the teacher in task distillation."})
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the KL terms."})
    max_student_gap: float = field(
        default=0.05,
        metadata={
            "help": "Warn (report, card, CLI output) when the student's dev macro-F1 is more than this below its "
            "teacher's."
        },
    )
    qat_steps: int = field(
        default=0,
        metadata={
            "help": "Quantization-aware stage `qat` (text-classification, after `task`): this many steps of the same "
            "task distillation with ONNX Runtime's full dynamic int8 simulated on every linear layer "
            "(compress/qat.py), keeping the best simulated-int8 dev check; the student stays plain "
            "fp32. 0: no such stage."
        },
    )
    qat_learning_rate: float = field(
        default=1e-5, metadata={"help": "Learning rate of the quantization-aware stage (`qat_steps` > 0)."}
    )
    qat_target: str = field(
        default="teacher",
        metadata={
            "help": "Soft target of the quantization-aware stage: 'teacher' (the task stage's teacher; checks judged "
            "on the simulated-int8 dev `best_checkpoint_metric`) or 'self' (the student's own fp32 logits, from a "
            "frozen copy of the task stage's student; checks judged on simulated-int8 label agreement with the "
            "same weights' fp32 on dev, ties broken by accuracy). The CE on gold keeps `alpha_ce`."
        },
    )
    # ---------------------------------------------------------------------------------------------------- checks
    measure_onnx: bool = field(
        default=True, metadata={"help": "Also measure ONNX Runtime latency (needs pip install 'hf-bort[onnx]')."}
    )
    latency_runs: int = field(default=100, metadata={"help": "Timed batch-1 forward passes per model and engine."})
    evaluate_test: bool = field(default=True, metadata={"help": "Evaluate source and student on the test split."})
    reload_check: bool = field(
        default=True, metadata={"help": "Reload the student in a fresh process with plain transformers."}
    )
    threads: int = field(default=None, metadata={"help": "torch threads (default: torch's choice)."})
    show_progress: bool = field(default=True, metadata={"help": "Progress bars per stage."})
    # --------------------------------------------------------------------------------------------------------- Hub
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "Push OUTPUT/student (weights, code, tokenizer, ONNX, card, front plot, report) to the Hub at the "
            "end, in one commit; the token and the Hub are checked before any training."
        },
    )
    hub_model_id: str = field(
        default=None, metadata={"help": "Hub repository to push to, e.g. 'user/bort-minilm-rt' (needs push_to_hub)."}
    )
    hub_private_repo: bool = field(
        default=None,
        metadata={"help": "Create the Hub repository private (default: public; an existing one keeps its setting)."},
    )
    hub_revision: str = field(
        default=None, metadata={"help": "Branch of the Hub repository to commit to (default: main)."}
    )
    # ------------------------------------------------------------------------------- transfer set, augmentation
    unlabelled_dataset: str = field(
        default=None,
        metadata={
            "help": "Transfer set: unlabelled in-domain texts (same forms as `dataset`; its train split is read). "
            "They join hidden-state and task distillation with the teacher's soft labels (KL only, no CE); exact "
            "duplicates of dev or test texts are removed. In Python also a DatasetDict or Dataset."
        },
    )
    unlabelled_text_column: str = field(
        default=None, metadata={"help": "Text column of `unlabelled_dataset` (default: `text_column`)."}
    )
    augment: str = field(
        default="auto",
        metadata={
            "help": "Augmentation round after `task` (text-classification, single texts): rows chosen near the "
            "task-distilled student's errors (Agora v2's selection) from the transfer set, or generated from the "
            "training texts by token substitution, labelled by the teacher; then `augment_epochs` of task "
            "distillation on train + transfer + those rows. 'auto': the continued student is kept only when its dev "
            "`best_checkpoint_metric` beats the task student's by more than one standard error (else the task "
            "student stays); 'always': kept regardless (ablations; the gate is still recorded); 'off': no round. "
            "Where it does not apply (text pairs, feature-extraction) 'auto' is recorded as skipped.",
            "choices": list(AUGMENT_MODES),
        },
    )
    augment_budget: int = field(
        default=None,
        metadata={
            "help": "At most this many teacher-labelled rows (teacher calls) in the augmentation round; default: "
            "min(1000, max(64, round(0.1 × gold training rows))). Must be >= 1: use augment='off' to switch it off."
        },
    )
    augment_epochs: int = field(
        default=1,
        metadata={
            "help": "Epochs of task distillation continued from the task student in the augmentation round "
            "(lr `task_learning_rate`; the best dev epoch kept)."
        },
    )

    def __post_init__(self) -> None:
        if self.max_cost_ratio is None and self.max_latency_ratio is None and self.max_latency_ms is None:
            self.max_cost_ratio = DEFAULT_MAX_COST_RATIO
        # saved resolved, so a resumed run notices a changed default
        defaults = EMBEDDING_DEFAULTS if self.task == "feature-extraction" else CLASSIFICATION_DEFAULTS
        for name, default in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        if self.embedding_loss == "cosine+similarity" and self.embedding_similarity_weight is None:
            self.embedding_similarity_weight = 1.0
        check_config(self)  # compress/config_checks.py

    def axis(self, name: str) -> tuple[int, ...] | None:
        """A search-space axis override (`search_layers`, …) as integers, or `None` for the scaled default."""
        return parse_axis(getattr(self, name), name)

    @property
    def search_max_steps(self) -> int:
        return math.ceil(self.search_base_steps / self.epsilon)

    def resolved_latency_cache(self) -> str:
        """`latency_cache`, or the machine's table `hf_bort.assets.cache_dir()/latency.json`."""
        from ..assets import cache_dir

        return str(self.latency_cache) if self.latency_cache is not None else str(cache_dir() / "latency.json")

    def search_config(self, output_dir: str | os.PathLike, dev_rows: int) -> OSEConfig:
        """
        The search's `OSEConfig`: the mirrored `search_*` settings, and what compress derives for the search (the
        budget and its cost axis, batches, seed, output folder under `output_dir`). The task adds its objective.
        """
        latency_budget = self.max_latency_ratio is not None or self.max_latency_ms is not None
        mirrored = {setting: getattr(self, name) for name, setting in mirrored_fields(CompressionConfig).items()}
        return OSEConfig(
            **mirrored,
            output_dir=str(Path(output_dir) / "search"),
            max_steps=self.search_max_steps,
            eval_batch_size=64,
            num_eval_batches=-(-min(self.search_eval_rows, dev_rows) // 64),
            max_train_batches=self.search_max_steps,
            seed=self.seed,
            cost="latency_ms" if latency_budget else "multiply_adds",
            sequence_length=self.cost_sequence_length,
            max_cost_ratio=self.max_latency_ratio if latency_budget else self.max_cost_ratio,
            max_multiply_adds_ratio=self.max_cost_ratio if latency_budget else None,
            max_latency_ms=self.max_latency_ms,
            latency_cache=self.resolved_latency_cache() if latency_budget else None,
            show_progress=self.show_progress,
        )

    def to_dict(self) -> dict[str, Any]:
        paths = all(isinstance(v, (str, os.PathLike)) for v in (self.dataset, self.unlabelled_dataset or ""))
        data = asdict(self) if paths else _asdict_without_dataset(self)
        if not isinstance(self.dataset, (str, os.PathLike)):
            data["dataset"] = f"<in-memory {type(self.dataset).__name__}>"
        else:
            data["dataset"] = str(self.dataset)
        source = self.unlabelled_dataset  # its texts are in the data fingerprint
        if source is None or isinstance(source, (str, os.PathLike)):
            data["unlabelled_dataset"] = None if source is None else str(source)
        else:
            data["unlabelled_dataset"] = f"<in-memory {type(source).__name__}>"
        return data

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the settings as JSON to `path`, atomically (a kill leaves the old file or the new one)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
        return path

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """
        Fields (other than `RESUME_NEUTRAL` ones) whose saved value differs from this config's. `PATH_FIELDS` are
        compared as resolved paths (`kb`, `./kb/`, `/abs/kb`). A field the saved run lacks counts as this config's
        value, but `BEFORE_ADDED` ones of a text-classification run as the value it had in effect.
        """
        mine = self.to_dict()
        saved = {**BEFORE_ADDED, **saved} if saved.get("task", TASKS[0]) == TASKS[0] else saved
        return sorted(
            name
            for name in mine
            if name not in RESUME_NEUTRAL and not _same_setting(name, saved.get(name, mine[name]), mine[name])
        )


def _same_setting(name: str, saved: Any, mine: Any) -> bool:
    if saved == mine:
        return True
    if name in PATH_FIELDS and isinstance(saved, str) and isinstance(mine, str):
        return os.path.realpath(os.path.expanduser(saved)) == os.path.realpath(os.path.expanduser(mine))
    return False


def _asdict_without_dataset(config: CompressionConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in ("dataset", "unlabelled_dataset")}
