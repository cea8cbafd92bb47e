"""
`compress`: one call from a source model, a labelled dataset and a budget to a validated, smaller, faster student.

Stages (each recorded in `OUTPUT/progress.json` when it finishes; a re-run skips finished stages and the search
resumes at the candidate it was in):

1. `data` — load and check the splits and the source before any training (columns, classes, labels vs the head,
   budget), carve a stratified dev split when there is none.
2. `source` — fine-tune a pretrained encoder (or take a fine-tuned classifier as it is): the teacher.
3. `search` — OSE with the task surrogate over the candidates within the budget; the lowest-error front point is
   chosen (`front.md`, `front.png`, `choice.json` in `OUTPUT/search/`).
4. `distill` — extraction of the chosen shape from the teacher, hidden-state distillation.
5. `task` — task distillation; the student is saved in `OUTPUT/student/` (weights, code, tokenizer).
6. `reload` — the student reloads with plain transformers in a fresh process, same logits.
7. `latency` — batch-1 latency of source and student, PyTorch and ONNX Runtime, measured in one run.
8. `test` — source and student on the test split: the only time it is read.
Then `compression_report.json` holds every setting, every number and the wall time of each stage, and
`OUTPUT/student/` becomes the folder to publish: its `README.md` model card (from the report), the report, the
front plot and the student's ONNX export beside the weights; with `push_to_hub` it is pushed in one commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

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
from .data import TaskData, load_task_data
from .quiet import quietly

if TYPE_CHECKING:
    from ..ose.space import Candidate

logger = logging.getLogger(__name__)

STAGES = ("data", "source", "search", "distill", "task", "reload", "latency", "test")
REPORT_NAME = "compression_report.json"
# Student vs teacher embeddings (task="feature-extraction", hf_bort.compress.embedding).
AGREEMENT_METRICS = ("mean_cosine", "nearest_neighbour_agreement", "spearman_pairwise")


@dataclass
class CompressionResult:
    """What [`compress`] returns: the report (also in `compression_report.json`) and where the student is."""

    report: dict[str, Any]
    output_dir: Path

    @property
    def student_path(self) -> Path:
        return self.output_dir / "student"

    def load_student(self):
        """The student as a `BortForSequenceClassification` (`SentenceTransformer` for task="feature-extraction")."""
        from transformers import AutoModelForSequenceClassification

        if self.report.get("task") == "feature-extraction":
            from ..ose.embedding import load_sentence_transformer

            return load_sentence_transformer(self.student_path)

        return AutoModelForSequenceClassification.from_pretrained(self.student_path)

    def summary(self) -> str:
        """Source vs student: dev/test metrics, parameters, multiply-adds and latency, as a text table."""
        report = self.report
        rows = [("", "source", "student")]
        source, student = report["source"], report["student"]
        for split in ("dev", "test"):
            for metric in ("accuracy", "macro_f1", *AGREEMENT_METRICS):
                a = (source.get(split) or {}).get(metric)  # `test` is None when there is no test split
                b = (student.get(split) or {}).get(metric)
                if a is not None or b is not None:
                    scale, suffix = (100, "%") if metric in ("accuracy", "macro_f1") else (1, "")
                    rows.append((f"{split} {metric}", _fmt(a, scale, suffix), _fmt(b, scale, suffix)))
        rows.append(("parameters", f"{source['parameters']:,}", f"{student['parameters']:,}"))
        rows.append(
            (
                "encoder multiply-adds",
                f"{source['encoder_multiply_adds']:,}",
                f"{student['encoder_multiply_adds']:,} (×{student['multiply_adds_ratio']:.3f})",
            )
        )
        latency = report.get("latency") or {}
        for engine in ("pytorch", "onnxruntime_fp32"):
            if engine in latency:
                cell = latency[engine]
                rows.append(
                    (
                        f"latency {engine} b{latency['batch_size']} L{latency['sequence_length']}",
                        f"{cell['source']['p50_ms']:.2f} ms",
                        f"{cell['student']['p50_ms']:.2f} ms (×{cell['student']['ratio_to_source']:.2f})",
                    )
                )
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{report['student']['shape']} from {report['settings']['model']}"]
        lines += ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows]
        return "\n".join(lines)


def _fmt(value: float | None, scale: float = 1.0, suffix: str = "") -> str:
    return "–" if value is None else f"{value * scale:.2f}{suffix}"


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
    "student",
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


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
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


def _progress_problem(progress: dict[str, Any]) -> str | None:
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
    return None


class _Run:
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
            self.progress = _read_json_object(self.progress_path)[0] if self.progress_path.is_file() else {}
        self.progress.setdefault("stages", {})
        self.progress.setdefault("wall_s", {})

    def _progress_problem(self) -> str | None:
        if not self.progress_path.is_file():
            return None
        progress, problem = _read_json_object(self.progress_path)
        problem = problem or _progress_problem(progress)
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
                saved, problem = _read_json_object(self.config_path)
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
        temporary.write_text(json.dumps(self.progress, indent=1, default=_json_default))
        os.replace(temporary, self.progress_path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def _source_kind(model: str) -> tuple[Any, bool]:
    """
    (config, is a fine-tuned sequence classifier). Refuses before any work, naming the file: a `config.json` that
    is not a JSON object, weights that cannot be read or whose shapes do not fit the config, and model types with no
    weight mapping (they would start from random weights).
    """
    from transformers import AutoConfig

    from ..models.bort.convert import SUPPORTED_MODEL_TYPES
    from ..models.sentence_transformers_folder import transformer_source

    folder = Path(transformer_source(model))
    config_file = folder / "config.json"
    if config_file.is_file():
        problem = _read_json_object(config_file)[1]
        if problem:
            raise ValueError(f"`model` {model!r}: {config_file} {problem}; a model's config.json is a JSON object.")
    try:
        config = AutoConfig.from_pretrained(folder if folder.is_dir() else transformer_source(model))
    except OSError as error:
        raise ValueError(f"`model` {model!r} cannot be loaded: {error}") from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(
            f"`model` {model!r}: {config_file} is not a usable config ({type(error).__name__}: {error})"
        ) from error
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"`model` is a {config.model_type!r} model; compress extracts weights from "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} checkpoints only (other types would start from random weights)."
        )
    if folder.is_dir():
        _check_weights(model, folder, config)
    # A config naming a classifier is a fine-tuned source: its head must have weights (checked by `_load_source` in
    # stage 1, an error naming the tensors: issue 19). Heads other than the task's (an MLM named by a
    # sentence-transformers checkpoint) are decided from the weights where the encoder is loaded (models.source_class).
    architectures = getattr(config, "architectures", None) or []
    return config, any(name.endswith("ForSequenceClassification") for name in architectures)


def _weight_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    state = torch.load(file, map_location="meta", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a state dict")
    return {name: tuple(value.shape) for name, value in state.items() if isinstance(value, torch.Tensor)}


def _check_weights(model: str, folder: Path, config) -> None:
    """The weight files of `folder` can be read and every tensor the encoder has fits `config`'s shapes."""
    from transformers import AutoModel

    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ValueError(f"`model` folder {str(folder)!r} holds no weights (model.safetensors or pytorch_model.bin).")
    with torch.device("meta"):
        encoder = AutoModel.from_config(config)
    expected = {name: tuple(value.shape) for name, value in encoder.state_dict().items()}
    prefix = f"{encoder.base_model_prefix}."
    wrong = []
    for file in files:
        try:
            shapes = _weight_shapes(file)
        except Exception as error:  # noqa: BLE001 - any reader error: the file is not usable weights
            raise ValueError(
                f"`model` {model!r}: {file} cannot be read as weights ({type(error).__name__}: {error}). The file "
                "is damaged or not a checkpoint: save or download the model again."
            ) from None
        for name, shape in shapes.items():
            key = name[len(prefix) :] if name.startswith(prefix) else name
            if key in expected and expected[key] != shape:
                wrong.append(f"{name} {list(shape)} (config: {list(expected[key])})")
    if wrong:
        raise ValueError(
            f"`model` {model!r}: the weights in {', '.join(str(f) for f in files)} do not fit "
            f"{folder / 'config.json'} ({len(wrong)} tensors, e.g. {'; '.join(wrong[:3])}): the config and the "
            "weights come from different models."
        )


def source_tokenizer(model: str):
    """The source's tokenizer, or an error naming the folder and the files a tokenizer needs (before any work)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except Exception as error:  # noqa: BLE001 - transformers' errors for missing files range from OSError to TypeError
        raise ValueError(
            f"`model` {model!r} has no usable tokenizer ({type(error).__name__}: {error}): compress needs the "
            "source's tokenizer files beside its weights (tokenizer.json, or vocab.txt / vocab.json + merges.txt, "
            "with tokenizer_config.json); save the tokenizer into the model folder."
        ) from None


def _position_limit(bort_config) -> int | None:
    """Tokens the source's position table holds (RoBERTa-style tables start at pad_token_id + 1); None: no table."""
    if bort_config.position_embedding_type == "absolute":
        return bort_config.max_position_embeddings
    if bort_config.position_embedding_type == "roberta":
        return bort_config.max_position_embeddings - bort_config.pad_token_id - 1
    return None


def _load_source(path: str | Path, field: str):
    """The fine-tuned source classifier; a checkpoint without its classifier weights is refused (never a teacher with
    a random head)."""
    from transformers import AutoModelForSequenceClassification

    from ..models.heads import load_with_head

    return load_with_head(
        AutoModelForSequenceClassification,
        path,
        "text-classification",
        field=field,
        advice="Give the classifier's complete checkpoint, or the pretrained encoder (its config's `architectures` "
        "without *ForSequenceClassification) to fine-tune a new head on the dataset.",
    )


def _budget_check(config: CompressionConfig, source_config) -> dict[str, Any]:
    """
    Settings checked against the source before any training: `max_length` (and, for a measured latency budget,
    `cost_sequence_length`) within its positions; some candidate within the multiply-add budget; and with
    `max_latency_ms`, the cheapest such candidate timed on this CPU within it.
    """
    from ..models.bort.convert import bort_config_from
    from ..ose.costs import candidate_costs
    from ..ose.space import Candidate

    bort_config = bort_config_from(source_config)
    limit = _position_limit(bort_config)
    latency_budget = config.max_latency_ratio is not None or config.max_latency_ms is not None
    lengths = ("max_length", "cost_sequence_length") if latency_budget else ("max_length",)
    for name in lengths:
        if limit is not None and getattr(config, name) > limit:
            offset = "" if bort_config.position_embedding_type == "absolute" else " minus the RoBERTa offset"
            raise ValueError(
                f"`{name}` {getattr(config, name)} exceeds the {limit} positions of the source `model` "
                f"(its max_position_embeddings {bort_config.max_position_embeddings}{offset}): give {limit} or less."
            )
    space = _space(config, bort_config)
    full = Candidate(
        bort_config.num_hidden_layers,
        max(bort_config.layer_num_attention_heads),
        bort_config.hidden_size,
        max(bort_config.layer_intermediate_sizes),
        bort_config.attention_head_size,
    )
    source_macs = candidate_costs(full, bort_config, config.cost_sequence_length).multiply_adds
    candidates = [Candidate.from_key(config.candidate)] if config.candidate else space.candidates()
    ratios = {
        c.key: candidate_costs(c, bort_config, config.cost_sequence_length).multiply_adds / source_macs
        for c in candidates
    }
    fitting = list(ratios)
    if config.max_cost_ratio is not None:
        fitting = [key for key, ratio in ratios.items() if ratio <= config.max_cost_ratio]
        if not fitting:
            cheapest = min(ratios, key=ratios.get)
            what = "`candidate`" if config.candidate else "No candidate of the search space"
            raise ValueError(
                f"{what} does not fit `max_cost_ratio` {config.max_cost_ratio}: the cheapest, {cheapest}, has "
                f"{ratios[cheapest]:.3f} of the source's multiply-adds."
            )
    checks = {"candidates_in_space": len(space), "candidates_within_multiply_adds_budget": len(fitting)}
    if config.max_latency_ms is not None:
        checks["cheapest_candidate_latency_ms"] = _check_latency_budget(config, bort_config, fitting, ratios)
    return checks


def _check_latency_budget(config: CompressionConfig, bort_config, keys: list[str], ratios: dict[str, float]):
    """Times the candidate with the fewest multiply-adds as the search will; refuses a `max_latency_ms` below it."""
    from ..ose.costs import LatencyCache, candidate_config
    from ..ose.space import Candidate

    cheapest = min(keys, key=ratios.get)
    latency = LatencyCache().measure(  # in memory: the search times (and caches) every candidate itself
        candidate_config(Candidate.from_key(cheapest), bort_config),
        batch_size=1,
        sequence_length=config.cost_sequence_length,
        engine=config.latency_engine,
    )
    if latency > config.max_latency_ms:
        raise ValueError(
            f"`max_latency_ms` {config.max_latency_ms} is below what even the cheapest candidate, {cheapest}, takes "
            f"on this CPU: {latency:.3f} ms ({config.latency_engine}, batch 1, {config.cost_sequence_length} "
            "tokens). Raise max_latency_ms, or shorten cost_sequence_length, or add smaller shapes to the space."
        )
    return latency


def _space(config: CompressionConfig, bort_config):
    from ..ose.space import SearchSpace

    return SearchSpace.from_source(
        bort_config,
        num_layers=config.axis("search_layers"),
        num_heads=config.axis("search_heads"),
        hidden_sizes=config.axis("search_hidden"),
        intermediate_sizes=config.axis("search_intermediate"),
    )


def search_settings(config: CompressionConfig, out: Path, dev_rows: int) -> dict[str, Any]:
    """`OSESearch` keywords both compress paths share: budget, cost, intervals, batches, seed."""
    latency_budget = config.max_latency_ratio is not None or config.max_latency_ms is not None
    return dict(
        output_dir=out / "search",
        epsilon=config.epsilon,
        interval_size=config.search_interval,
        max_steps=config.search_max_steps,
        batch_size=config.search_batch_size,
        eval_batch_size=64,
        num_eval_batches=-(-min(config.search_eval_rows, dev_rows) // 64),
        max_train_batches=config.search_max_steps,
        learning_rate=config.search_learning_rate,
        seed=config.seed,
        cost="latency_ms" if latency_budget else "multiply_adds",
        sequence_length=config.cost_sequence_length,
        latency_engine=config.latency_engine,
        max_cost_ratio=config.max_latency_ratio if latency_budget else config.max_cost_ratio,
        max_multiply_adds_ratio=config.max_cost_ratio if latency_budget else None,
        max_latency_ms=config.max_latency_ms,
        layer_selection=config.layer_selection,
        show_progress=config.show_progress,
    )


def distil_settings(config: CompressionConfig, out: Path) -> dict[str, Any]:
    """`recipe.extract_and_distil` keywords both compress paths share (stage 4)."""
    return dict(
        seed=config.seed,
        layer_selection=config.layer_selection,
        distill_epochs=config.distill_epochs,
        distill_learning_rate=config.distill_learning_rate,
        batch_size=config.batch_size,
        work_dir=out / "tmp-trainer",
        show_progress=config.show_progress,
    )


def search_stage(run: _Run, search, config: CompressionConfig, out: Path, picks: bool = False) -> None:
    """
    Stage 3 of both paths: the given `candidate`, or the search's lowest-error point within the budget; writes
    `search/front.md`, `front.png`, `choice.json` and records the stage. `picks` adds the front's picks at other
    multiply-add budgets.
    """
    from ..ose.space import Candidate

    if run.done("search"):
        return
    start = time.perf_counter()
    if config.candidate:
        candidate = Candidate.from_key(config.candidate)
        record = {"searched": False, "candidate": candidate.to_dict(), "why": "given by `candidate`"}
    else:
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
            record["picks_within_ratio"] = _picks(result)
        (search_dir / "choice.json").write_text(json.dumps(record, indent=1))
    run.finish("search", record, time.perf_counter() - start)


def _picks(result) -> dict[str, Any]:
    """The front's lowest-error point within 10 %, 25 % and 50 % of the source's multiply-adds."""
    picks = {}
    for ratio in (0.10, 0.25, 0.5):
        try:
            pick = result.choose(max_cost_ratio=ratio) if result.cost == "multiply_adds" else None
        except ValueError:
            pick = None
        if pick is not None:
            picks[f"{ratio:.2f}"] = {"candidate": pick.candidate.key, "error": pick.error, **pick.metrics}
    return picks


@quietly  # no datasets Map bars, no "newly initialized … TRAIN" for the head it trains next (compress/quiet.py)
def compress(config: CompressionConfig) -> CompressionResult:
    """
    Compresses `config.model` for the labelled `config.dataset` within the budget: see the module docstring for the
    stages and [`CompressionConfig`] for every setting (`task="feature-extraction"`: the embedding-model path of
    `hf_bort.compress.embedding`, whose student is a sentence-transformers folder). Returns a
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
    if config.push_to_hub:  # token and Hub checked before any work
        from ..hub import check_push_ready

        check_push_ready(config.hub_model_id, field="hub_model_id")
    with output_folder(config):  # checked, then this run's alone until it returns
        if config.task == "feature-extraction":  # embedding models: hf_bort.compress.embedding
            from .embedding import compress_embeddings

            return compress_embeddings(config)
        return _compress_classifier(config)


def _compress_classifier(config: CompressionConfig) -> CompressionResult:
    """The `task="text-classification"` path of [`compress`], in its locked output folder."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification

    from ..models.bort.convert import convert_to_bort
    from ..models.bort.parameters import count_parameters
    from ..ose.costs import candidate_config, encoder_multiply_adds
    from ..ose.extract import save_extracted
    from ..ose.search import OSESearch
    from ..ose.space import Candidate
    from . import recipe

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    total_start = time.perf_counter()

    # ---------------------------------------------------------------------------------- 1. data and source checks
    source_config, is_classifier = _source_kind(config.model)
    tokenizer = source_tokenizer(config.model)
    source_classifier = _load_source(config.model, "model") if is_classifier else None  # its head: checked now
    label2id = dict(source_config.label2id) if is_classifier else None
    data: TaskData = load_task_data(
        config, model_label2id=label2id, model_num_labels=source_config.num_labels if is_classifier else None
    )
    budget = _budget_check(config, source_config)
    run = _Run(config)
    out = run.dir
    stages = tqdm(total=len(STAGES), desc="compress", disable=not config.show_progress)
    fingerprint = data.fingerprint()
    run.check_data(fingerprint)
    run.finish(
        "data",
        {
            "fingerprint": fingerprint,
            "sizes": data.sizes(),
            "num_labels": data.num_labels,
            "label_names": data.label_names,
            "examples": list(data.validation["text"][:3]),  # the card's widget (issue 22)
            "validation_carved": data.validation_carved,
            "notes": data.notes,
            "source_is_finetuned_classifier": is_classifier,
            **budget,
        },
        0.0,
    )
    stages.update(1)
    tokenised = {
        name: recipe.tokenise(split, tokenizer, config.max_length)
        for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test))
        if split is not None
    }

    # ------------------------------------------------------------------------------------------------ 2. source
    source_dir = out / "source-finetuned"
    stages.set_description("compress: source")
    if not run.done("source"):
        start = time.perf_counter()
        if is_classifier:
            teacher_model = source_classifier.eval()
            record: dict[str, Any] = {"finetuned": False, "path": str(config.model)}
        else:
            teacher_model = recipe.classifier_from_encoder(config.model, data.label_names, config.seed)
            training = recipe.finetune(
                teacher_model,
                tokenised["train"],
                tokenizer,
                epochs=config.finetune_epochs,
                learning_rate=config.finetune_learning_rate,
                batch_size=config.batch_size,
                seed=config.seed,
                work_dir=out / "tmp-trainer",
                show_progress=config.show_progress,
            )
            teacher_model.save_pretrained(source_dir)
            tokenizer.save_pretrained(source_dir)
            record = {"finetuned": True, "path": str(source_dir), "training": training}
        record["dev"] = recipe.evaluate(teacher_model, tokenised["validation"], tokenizer)
        run.finish("source", record, time.perf_counter() - start)
    # this run's folder, however it is spelt now (the record holds the spelling of the call that fine-tuned)
    source_path = str(source_dir) if run.record("source")["finetuned"] else run.record("source")["path"]
    if source_classifier is None:  # fine-tuned here (a classifier source was loaded and checked in stage 1)
        source_classifier = _load_source(source_path, "source-finetuned")
    teacher_model = source_classifier.eval()
    teacher = convert_to_bort(teacher_model).eval()  # same outputs, Bort parameter names
    stages.update(1)

    # ------------------------------------------------------------------------------------------------ 3. search
    search = OSESearch(
        teacher,
        _space(config, teacher.config),
        tokenizer=tokenizer,
        task_dataset=data.train,
        eval_dataset=data.validation.select(range(min(config.search_eval_rows, len(data.validation)))),
        objective="task",
        temperature=config.temperature,
        alpha_ce=config.alpha_ce,
        alpha_kd=config.alpha_kd,
        max_length=config.max_length,
        **search_settings(config, out, len(data.validation)),
    )
    stages.set_description("compress: search")
    search_stage(run, search, config, out, picks=True)
    candidate = Candidate.from_dict(run.record("search")["candidate"])
    stages.update(1)

    # ------------------------------------------------------------------------- 4. extraction + hidden distillation
    distilled_dir = out / "student-distilled"
    stages.set_description("compress: distill")
    if not run.done("distill"):
        start = time.perf_counter()
        student, record = recipe.extract_and_distil(
            teacher,
            candidate,
            tokenised["train"],
            tokenised["validation"],
            tokenizer,
            **distil_settings(config, out),
        )
        save_extracted(student, distilled_dir, tokenizer, card=False)  # intermediate: no card
        run.finish("distill", record, time.perf_counter() - start)
    stages.update(1)

    # ---------------------------------------------------------------------------------------- 5. task distillation
    student_dir = out / "student"
    stages.set_description("compress: task")
    if not run.done("task"):
        start = time.perf_counter()
        student = AutoModelForSequenceClassification.from_pretrained(distilled_dir)
        training = recipe.finetune(
            student,
            tokenised["train"],
            tokenizer,
            epochs=config.task_epochs,
            learning_rate=config.task_learning_rate,
            batch_size=config.batch_size,
            seed=config.seed,
            work_dir=out / "tmp-trainer",
            show_progress=config.show_progress,
            teacher=teacher,
            alpha_ce=config.alpha_ce,
            alpha_kd=config.alpha_kd,
            temperature=config.temperature,
        )
        save_extracted(student, student_dir, tokenizer, card=False)  # its card is written from the report
        record = {"training": training, "dev": recipe.evaluate(student, tokenised["validation"], tokenizer)}
        run.finish("task", record, time.perf_counter() - start)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    shutil.rmtree(out / "tmp-trainer", ignore_errors=True)
    stages.update(1)

    # ------------------------------------------------------------------------------------------------ 6. reload
    stages.set_description("compress: reload")
    if not run.done("reload"):
        start = time.perf_counter()
        if config.reload_check:
            texts = list(data.validation["text"])[:16]
            record = recipe.reload_check(student_dir, student, tokenizer, texts, config.max_length)
            if not record["ok"]:
                raise RuntimeError(f"The saved student does not reload with the same logits: {record}")
        else:
            record = {"skipped": "reload_check=False"}
        run.finish("reload", record, time.perf_counter() - start)
    stages.update(1)

    # ----------------------------------------------------------------------------------------------- 7. latency
    stages.set_description("compress: latency")
    if not run.done("latency"):
        start = time.perf_counter()
        record = recipe.measure_latency(
            {"source": teacher_model, "student": student},
            tokenizer,
            sequence_length=config.max_length,
            batch_size=1,
            runs=config.latency_runs,
            onnx_dir=out / "onnx" if config.measure_onnx else None,
            seed=config.seed,
        )
        run.finish("latency", record, time.perf_counter() - start)
    stages.update(1)

    # ------------------------------------------------------------------------------- 8. test, read once at the end
    stages.set_description("compress: test")
    if not run.done("test"):
        start = time.perf_counter()
        if config.evaluate_test and "test" in tokenised:
            record = {
                "source": recipe.evaluate(teacher_model, tokenised["test"], tokenizer),
                "student": recipe.evaluate(student, tokenised["test"], tokenizer),
            }
        else:
            record = {"skipped": "no test split" if "test" not in tokenised else "evaluate_test=False"}
        run.finish("test", record, time.perf_counter() - start)
    stages.update(1)
    stages.close()

    # ------------------------------------------------------------------------------------------------- report
    source_bort_config = teacher.config
    student_config = candidate_config(candidate, source_bort_config)
    source_macs = encoder_multiply_adds(source_bort_config, config.cost_sequence_length)
    student_macs = encoder_multiply_adds(student.config, config.cost_sequence_length)
    records = run.progress["stages"]
    test = records["test"]
    report = {
        "settings": config.to_dict(),
        "data": records["data"],
        "source": {
            "path": source_path,
            "model_type": source_config.model_type,
            "finetuned_here": records["source"]["finetuned"],
            "training": records["source"].get("training"),
            "parameters": count_parameters(source_bort_config, task="text-classification").total,
            "encoder_multiply_adds": source_macs,
            "dev": records["source"]["dev"],
            "test": test.get("source"),
        },
        "search": records["search"],
        "student": {
            **student_record(
                config,
                records,
                student_dir,
                candidate,
                student.config,
                parameters=count_parameters(student_config, task="text-classification").total,
                multiply_adds=student_macs,
                source_multiply_adds=source_macs,
            ),
            "task_distillation": records["task"]["training"],
            "dev": records["task"]["dev"],
            "test": test.get("student"),
        },
        "reload": records["reload"],
        "latency": records["latency"],
        "test_split_read": "once, after every choice was made" if "skipped" not in test else test["skipped"],
        "wall_s": {**run.progress["wall_s"], "this_call_s": time.perf_counter() - total_start},
        "machine": recipe.machine_info(),
    }
    publish(config, out, report)
    return CompressionResult(report=report, output_dir=out)


def student_record(
    config: CompressionConfig,
    records: dict[str, Any],
    student_dir: Path,
    candidate: Candidate,
    model_config: Any,
    parameters: int,
    multiply_adds: int,
    source_multiply_adds: int,
) -> dict[str, Any]:
    """The report's `student` entries both compress paths share: where, which shape, its size and cost, extraction."""
    return {
        "path": str(student_dir),
        "shape": candidate.key,
        "config": {
            name: getattr(model_config, name)
            for name in (
                "num_hidden_layers",
                "num_attention_heads",
                "hidden_size",
                "intermediate_size",
                "attention_head_size",
            )
        },
        "parameters": parameters,
        "encoder_multiply_adds": multiply_adds,
        "multiply_adds_ratio": multiply_adds / source_multiply_adds,
        "multiply_adds_sequence_length": config.cost_sequence_length,
        "extraction": records["distill"],
    }


def publish(config: CompressionConfig, out: Path, report: dict[str, Any]) -> None:
    """
    The last step of both `compress` paths: saves `report` as `OUTPUT/compression_report.json`, makes
    `OUTPUT/student` the folder to publish (its `README.md` card written from the saved report, the report, the
    front plot and the ONNX export beside the weights: `hf_bort.cards.write_compressed_card`) and, with
    `push_to_hub`, pushes that folder in one commit and records the push in `report["hub"]` (saved again).
    """
    from ..cards import write_compressed_card

    (out / REPORT_NAME).write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    model_name = config.hub_model_id.split("/")[-1] if config.hub_model_id else None
    write_compressed_card(
        out, json.loads((out / REPORT_NAME).read_text()), model_name=model_name, repo_id=config.hub_model_id
    )
    if config.push_to_hub:
        from ..hub import push_to_hub

        report["hub"] = push_to_hub(
            out / "student", config.hub_model_id, private=config.hub_private_repo, revision=config.hub_revision
        )
        (out / REPORT_NAME).write_text(json.dumps(report, indent=1, default=_json_default) + "\n")


def search_record(search, result, chosen, plot: str | None) -> dict[str, Any]:
    """What both `compress` paths record of a finished search: the choice, rungs, steps and the Pareto front."""
    return {
        "searched": True,
        "candidate": chosen.candidate.to_dict(),
        "error": chosen.error,
        "metrics": chosen.metrics,
        "objective": result.objective_name,
        "run_id": search.run_id,
        "rungs": result.rungs,
        "survivors_per_rung": result.survivors_per_rung,
        "candidates_searched": result.num_candidates,
        "fully_trained": len(result.final),
        "training_steps": _training_steps(result),
        "front": [
            {
                "candidate": r.candidate.key,
                "params": r.params,
                "multiply_adds": r.multiply_adds,
                "multiply_adds_ratio": r.multiply_adds / result.source_multiply_adds,
                "latency_ms": r.latency_ms,
                "error": r.error,
                **r.metrics,
            }
            for r in result.pareto_front()
        ],
        "plot": plot,
    }


def _training_steps(result) -> dict[str, int]:
    """Training steps the search spent (warm intervals: each evaluation adds its steps beyond the previous rung)."""
    previous = {}
    total = 0
    for r in sorted(result.evaluations, key=lambda r: r.steps):
        total += r.steps - previous.get(r.candidate.key, 0)
        previous[r.candidate.key] = r.steps
    return {"search_total": total, "exhaustive_equivalent": result.num_candidates * result.max_steps}
