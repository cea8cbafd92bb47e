"""OSESearch: optimal sub-architecture extraction over a grid of candidates, with successive (1+ε)-pruning."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models.bort.configuration_bort import BortConfig
from ..models.bort.modeling_bort import BortForMaskedLM, BortModel, BortPreTrainedModel
from .costs import LatencyCache, candidate_config, candidate_costs
from .distill import bort_distillation_loss, hidden_state_loss, kd_loss, make_projection
from .extract import (
    IMPORTANCE_METHODS,
    LAYER_SELECTIONS,
    Importance,
    compute_importance,
    extract_subnetwork,
    generic_bort_config,
    load_source_as_bort,
    save_extracted,
)
from .space import Candidate, SearchSpace

logger = logging.getLogger(__name__)

COSTS = ("multiply_adds", "latency_ms")
STORE_NAME = "candidates.jsonl"


@dataclass(frozen=True)
class CandidateResult:
    """One evaluation: a candidate's costs and its error surrogate ê after `steps` distillation steps."""

    candidate: Candidate
    params: int
    encoder_params: int
    multiply_adds: int
    latency_ms: float | None
    error: float
    steps: int
    seed: int
    wall_time: float
    rung: int = 0

    def objective(self, name: str) -> float:
        if name == "params":
            return float(self.params)
        if name == "error":
            return float(self.error)
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"No {name!r} recorded for {self.candidate.key}: search with cost={name!r}.")
        return float(value)

    def to_record(self, run_id: str) -> dict[str, Any]:
        data = asdict(self)
        data["candidate"] = self.candidate.to_dict()
        return {"run_id": run_id, "key": self.candidate.key, **data}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CandidateResult:
        fields = {name: record[name] for name in cls.__dataclass_fields__ if name != "candidate"}
        return cls(candidate=Candidate.from_dict(record["candidate"]), **fields)


def dominates(a: Sequence[float], b: Sequence[float], factor: float = 1.0) -> bool:
    """True when `a` (1+ε)-dominates `b`: a_j ≤ factor·b_j for every objective j (and a ≠ b when factor is 1)."""
    weakly = all(x <= factor * y for x, y in zip(a, b, strict=True))
    return weakly and (factor > 1.0 or any(x < y for x, y in zip(a, b, strict=True)))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (minimisation of every coordinate)."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def covers(front: Sequence[Sequence[float]], reference: Sequence[Sequence[float]], epsilon: float) -> bool:
    """True when every point of `reference` is (1+ε)-dominated by some point of `front`."""
    return all(any(dominates(f, r, 1.0 + epsilon) or list(f) == list(r) for f in front) for r in reference)


@dataclass
class SearchResult:
    """
    What [`OSESearch.run`] returns: every evaluation, the candidates trained to the full budget, and the reference
    costs of the source (the largest point T).
    """

    evaluations: list[CandidateResult]
    max_steps: int
    epsilon: float
    cost: str
    num_candidates: int
    source_params: int
    source_multiply_adds: int
    source_latency_ms: float | None = None
    rungs: list[int] = field(default_factory=list)
    survivors_per_rung: list[int] = field(default_factory=list)

    @property
    def final(self) -> list[CandidateResult]:
        """Candidates evaluated at the full budget `max_steps`, one each."""
        seen: dict[str, CandidateResult] = {}
        for result in self.evaluations:
            if result.steps == self.max_steps:
                seen.setdefault(result.candidate.key, result)
        return sorted(seen.values(), key=lambda r: r.candidate)

    @property
    def fraction_fully_trained(self) -> float:
        return len(self.final) / self.num_candidates

    def objectives(self, result: CandidateResult, names: Sequence[str] | None = None) -> tuple[float, ...]:
        return tuple(result.objective(name) for name in (names or ("params", self.cost, "error")))

    def pareto_front(self, objectives: Sequence[str] | None = None) -> list[CandidateResult]:
        """Fully trained candidates not dominated in (params, cost, error), or in the given `objectives`."""
        final = self.final
        points = [self.objectives(r, objectives) for r in final]
        return sorted((final[i] for i in pareto_front(points)), key=lambda r: r.objective(self.cost))

    def w_coefficient(self, result: CandidateResult, weights: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
        """
        Our W-coefficient (lower is better): w_p·p̂/p̂_T + w_c·ĉ/ĉ_T + w_e·ê/ê_med, where T is the source and ê_med
        the median error on the Pareto front, so each term is about 1 and the weights say how much a unit of each
        relative saving is worth.
        """
        if len(weights) != 3 or any(w < 0 for w in weights):
            raise ValueError(f"`weights` must be three non-negative numbers (params, cost, error), got {weights!r}.")
        front_errors = sorted(r.error for r in self.pareto_front())
        median = front_errors[len(front_errors) // 2] if front_errors else 1.0
        source_cost = self.source_multiply_adds if self.cost == "multiply_adds" else self.source_latency_ms
        return (
            weights[0] * result.params / self.source_params
            + weights[1] * result.objective(self.cost) / source_cost
            + weights[2] * result.error / max(median, 1e-12)
        )

    def best(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        max_cost_ratio: float | None = None,
        max_params_ratio: float | None = None,
    ) -> CandidateResult:
        """
        The front point with the lowest W-coefficient, optionally among those within a budget relative to the
        source (`max_cost_ratio=0.25` keeps points with at most 25% of the source's cost).
        """
        front = self.pareto_front()
        source_cost = self.source_multiply_adds if self.cost == "multiply_adds" else self.source_latency_ms
        if max_cost_ratio is not None:
            front = [r for r in front if r.objective(self.cost) <= max_cost_ratio * source_cost]
        if max_params_ratio is not None:
            front = [r for r in front if r.params <= max_params_ratio * self.source_params]
        if not front:
            raise ValueError("No Pareto-front candidate fits `max_cost_ratio` / `max_params_ratio`.")
        return min(front, key=lambda r: (self.w_coefficient(r, weights), r.candidate))

    def to_markdown(self, results: Sequence[CandidateResult] | None = None) -> str:
        """A markdown table of the Pareto front (or of `results`)."""
        rows = list(self.pareto_front() if results is None else results)
        lines = [
            "| candidate | D | A | H | I | params (M) | params / T | MACs (M) | MACs / T | latency (ms) | ê | W |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            c = r.candidate
            latency = f"{r.latency_ms:.2f}" if r.latency_ms is not None else "–"
            lines.append(
                f"| {c.key} | {c.num_layers} | {c.num_heads} | {c.hidden_size} | {c.intermediate_size} | "
                f"{r.params / 1e6:.2f} | {r.params / self.source_params:.3f} | {r.multiply_adds / 1e6:.1f} | "
                f"{r.multiply_adds / self.source_multiply_adds:.3f} | {latency} | {r.error:.4f} | "
                f"{self.w_coefficient(r):.3f} |"
            )
        return "\n".join(lines) + "\n"

    def plot(self, path: str | os.PathLike) -> Path:
        """Saves a PNG of error against cost: every fully trained candidate, the Pareto front highlighted."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        final, front = self.final, self.pareto_front()
        figure, axis = plt.subplots(figsize=(7, 4.5))
        axis.scatter(
            [r.objective(self.cost) for r in final],
            [r.error for r in final],
            s=[10 + 40 * r.params / self.source_params for r in final],
            alpha=0.4,
            label="fully trained candidates (size ∝ params)",
        )
        axis.plot(
            [r.objective(self.cost) for r in front], [r.error for r in front], "o-", color="C3", label="Pareto front"
        )
        axis.set_xscale("log")
        axis.set_xlabel("encoder multiply-adds" if self.cost == "multiply_adds" else "latency (ms)")
        axis.set_ylabel(f"ê (held-out distillation loss after {self.max_steps} steps)")
        axis.set_title(f"OSE search, ε = {self.epsilon}, {len(final)}/{self.num_candidates} fully trained")
        axis.legend()
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return path


class _Store:
    """The JSONL store: one record per evaluation, appended atomically; a torn last line is dropped on open."""

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
            if record.get("run_id") == run_id:
                result = CandidateResult.from_record(record)
                records[result.candidate.key, result.steps] = result
        if good_end < len(raw):
            logger.warning("Ignoring the torn last line of %s (an interrupted write).", self.path)
            if _rank_world()[0] == 0:
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


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _maybe_init_distributed() -> None:
    """Joins the process group `accelerate launch` / `torchrun` describe in the environment (gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)


class OSESearch:
    r"""
    Optimal sub-architecture extraction (Bort's OSE) for an encoder: finds the candidates of `space` that are
    Pareto-optimal in parameters p̂, inference cost ĉ (multiply-adds or measured latency) and error ê.

    ê is the held-out distillation loss of a candidate after a bounded number of steps, its weights inherited from
    the source by extraction (importance-ranked layers, heads, neurons, residual dims). With an MLM teacher ê is
    KL(teacher ‖ student) of the MLM distributions on masked tokens; otherwise the relative error of the projected
    last hidden state (learned projection, initialised to put the kept dims back in place).

    The algorithm (see docs/ose.md): the full budget is `max_steps = ceil(base_steps / epsilon)`; rungs train all
    survivors for s, 2s, 4s, … steps (s = `interval_size`), always from the extracted weights with a constant learning
    rate and the same batch order, so a rung's result is exactly what a run of that many steps gives. After each
    rung a candidate is dropped when another survivor is in a cost box no larger in both costs (boxes are powers of
    1+ε) and has an error lower by more than a factor 1+ε. The survivors are trained to `max_steps`; the result's
    Pareto front is taken over them.

    Example:

    ```python
    >>> from hf_bort import OSESearch, SearchSpace
    >>> from hf_bort.assets import packaged_minilm_path, load_rotten_tomatoes
    >>> source = packaged_minilm_path()
    >>> search = OSESearch(source, space=SearchSpace.from_source(source), epsilon=0.2,
    ...                    text_dataset=load_rotten_tomatoes()["train"], output_dir="ose-run")  # doctest: +SKIP
    >>> result = search.run()  # doctest: +SKIP
    >>> student = search.extract(result.best(max_cost_ratio=0.25))  # doctest: +SKIP
    ```
    """

    def __init__(
        self,
        source: str | os.PathLike | Any,
        space: SearchSpace | None = None,
        *,
        epsilon: float = 0.1,
        interval_size: int | None = None,
        text_dataset: Any = None,
        output_dir: str | os.PathLike = "ose-run",
        base_steps: int = 4,
        max_steps: int | None = None,
        batch_size: int = 8,
        max_length: int = 64,
        num_eval_batches: int = 4,
        max_train_batches: int = 64,
        learning_rate: float = 1e-4,
        seed: int = 0,
        cost: str = "multiply_adds",
        sequence_length: int = 128,
        latency_batch_size: int = 1,
        latency_cache: str | os.PathLike | None = None,
        importance_method: str = "activation",
        calibration_batches: int = 8,
        heterogeneous: bool = False,
        layer_selection: str = "importance",
        freeze_embeddings: bool = True,
        prune: bool = True,
        tokenizer: Any = None,
        text_column: str = "text",
        show_progress: bool = True,
    ):
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon <= 1:
            raise ValueError(f"`epsilon` must be a number in (0, 1], got {epsilon!r}.")
        for name, value in (
            ("base_steps", base_steps),
            ("batch_size", batch_size),
            ("max_length", max_length),
            ("num_eval_batches", num_eval_batches),
            ("max_train_batches", max_train_batches),
            ("sequence_length", sequence_length),
            ("latency_batch_size", latency_batch_size),
            ("calibration_batches", calibration_batches),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps <= 0):
            raise ValueError(f"`max_steps` must be a positive integer or None, got {max_steps!r}.")
        self.max_steps = max_steps or math.ceil(base_steps / epsilon)
        if interval_size is None:
            interval_size = max(1, self.max_steps // 8)
        if isinstance(interval_size, bool) or not isinstance(interval_size, int) or interval_size <= 0:
            raise ValueError(f"`interval_size` must be a positive integer, got {interval_size!r}.")
        if cost not in COSTS:
            raise ValueError(f"`cost` must be one of {COSTS}, got {cost!r}.")
        if importance_method not in IMPORTANCE_METHODS:
            raise ValueError(f"`importance_method` must be one of {IMPORTANCE_METHODS}, got {importance_method!r}.")
        if layer_selection not in LAYER_SELECTIONS:
            raise ValueError(f"`layer_selection` must be one of {LAYER_SELECTIONS}, got {layer_selection!r}.")
        if not learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate!r}.")
        if space is not None and not isinstance(space, SearchSpace):
            raise TypeError(f"`space` must be a SearchSpace, got {type(space).__name__}.")
        self.texts = _texts(text_dataset, text_column)
        needed = (num_eval_batches + 1) * batch_size
        if len(self.texts) < needed:
            raise ValueError(
                f"`text_dataset` has {len(self.texts)} texts; at least {needed} are needed "
                f"({num_eval_batches} held-out batches of {batch_size} plus one training batch)."
            )
        self.source = source
        self.space = space if space is not None else SearchSpace.from_source(_config_of(source))
        self.epsilon = float(epsilon)
        self.interval_size = interval_size
        self.output_dir = Path(output_dir)
        self.batch_size, self.max_length = batch_size, max_length
        self.num_eval_batches, self.max_train_batches = num_eval_batches, max_train_batches
        self.learning_rate, self.seed, self.cost = learning_rate, seed, cost
        self.sequence_length, self.latency_batch_size = sequence_length, latency_batch_size
        self.latency_cache = Path(latency_cache) if latency_cache else self.output_dir / "latency.json"
        self.importance_method, self.calibration_batches = importance_method, calibration_batches
        self.heterogeneous, self.layer_selection = heterogeneous, layer_selection
        self.freeze_embeddings, self.prune, self.show_progress = freeze_embeddings, prune, show_progress
        self.tokenizer = tokenizer
        self._prepared = False

    # ----------------------------------------------------------------------------------------------- preparation
    @property
    def rungs(self) -> list[int]:
        """Step counts of the intervals: s, 2s, 4s, … below `max_steps`, then `max_steps`."""
        steps, rungs = self.interval_size, []
        if self.prune:
            while steps < self.max_steps:
                rungs.append(steps)
                steps *= 2
        return [*rungs, self.max_steps]

    def _prepare(self) -> None:
        if self._prepared:
            return
        from transformers import AutoModel, AutoTokenizer

        source = self.source
        if self.tokenizer is None:
            if not isinstance(source, (str, os.PathLike)):
                raise ValueError("`tokenizer` is required when `source` is a model instance rather than a path.")
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        bort = load_source_as_bort(source)
        if bort is None:
            teacher = AutoModel.from_pretrained(source) if isinstance(source, (str, os.PathLike)) else source
            warnings.warn(
                f"No weight mapping from {teacher.config.model_type!r} to Bort: candidates start from random "
                "initialisation (weight inheritance covers BERT, MiniLM, RoBERTa, XLM-R, CamemBERT, ELECTRA).",
                stacklevel=3,
            )
            self.base_config = generic_bort_config(teacher.config)
            self.teacher, self.bort = teacher.eval(), None
        else:
            bort = bort.eval()
            self.bort = bort
            self.teacher = bort
            self.base_config = bort.config
        self.use_logits = isinstance(self.bort, BortForMaskedLM)
        if self.bort is not None:
            head = self.base_config.attention_head_size
            bad = [c.key for c in self.space if c.head_size != head]
            if bad:
                raise ValueError(
                    f"`space` has {len(bad)} candidates (e.g. {bad[0]}) whose head size differs from the source's "
                    f"attention head width {head}: weights cannot be inherited (use SearchSpace.from_source)."
                )
        self.base_config = BortConfig.from_dict(
            {**self.base_config.to_dict(), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        )
        self._build_batches()
        if self.bort is not None:
            calibration = self.train_batches[: self.calibration_batches]
            self.importance = compute_importance(
                self.bort,
                calibration,
                method=self.importance_method,
                mask_token_id=self.tokenizer.mask_token_id,
                seed=self.seed,
            )
        else:
            self.importance = None
        self.run_id = self._run_id()
        self._prepared = True

    def _build_batches(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(self.texts), generator=generator).tolist()
        texts = [self.texts[i] for i in order]
        n_eval = self.num_eval_batches * self.batch_size
        n_train = min(self.max_train_batches, self.max_steps, (len(texts) - n_eval) // self.batch_size)

        def batches(chunk: list[str]) -> list[dict[str, torch.Tensor]]:
            out = []
            for start in range(0, len(chunk), self.batch_size):
                encoded = self.tokenizer(
                    chunk[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
                if self.use_logits:
                    batch.update(self._mask(batch, generator))
                out.append(batch)
            return out

        self.eval_batches = batches(texts[:n_eval])
        self.train_batches = batches(texts[n_eval : n_eval + n_train * self.batch_size])
        self.text_fingerprint = hashlib.sha256("\x00".join(texts[: n_eval + n_train * self.batch_size]).encode())
        if not self.use_logits:  # hidden-state teachers: compute the targets once
            with torch.no_grad():
                for batch in (*self.eval_batches, *self.train_batches):
                    batch["target"] = self._teacher_hidden(batch)

    def _mask(self, batch, generator) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        special = torch.zeros_like(ids, dtype=torch.bool)
        for token in self.tokenizer.all_special_ids:
            special |= ids == token
        chosen = (torch.rand(ids.shape, generator=generator) < 0.15) & ~special
        chosen[:, 1] |= ~special[:, 1]  # at least one masked token per sequence
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        masked = torch.where(chosen, torch.full_like(ids, self.tokenizer.mask_token_id), ids)
        return {"masked_input_ids": masked, "labels": labels}

    def _teacher_hidden(self, batch) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.bort is not None:
            base = self.bort if isinstance(self.bort, BortModel) else self.bort.bort
            return base(**inputs).last_hidden_state
        return self.teacher(**inputs, output_hidden_states=True).hidden_states[-1]

    def _run_id(self) -> str:
        settings = {
            "source": str(self.source) if isinstance(self.source, (str, os.PathLike)) else type(self.source).__name__,
            "source_config": self.base_config.to_json_string(use_diff=False),
            "texts": self.text_fingerprint.hexdigest(),
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "lr": self.learning_rate,
            "seed": self.seed,
            "importance": self.importance_method,
            "heterogeneous": self.heterogeneous,
            "layer_selection": self.layer_selection,
            "freeze_embeddings": self.freeze_embeddings,
            "num_eval_batches": self.num_eval_batches,
            "num_train_batches": len(self.train_batches),
            "sequence_length": self.sequence_length,
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------------------------------ evaluation
    def build_student(self, candidate: Candidate) -> BortPreTrainedModel:
        """The candidate with weights extracted from the source (or randomly initialised when there is no mapping)."""
        self._prepare()
        if self.bort is None:
            torch.manual_seed(self.seed)
            return BortModel(candidate_config(candidate, self.base_config))
        student = self._extract(candidate, BortForMaskedLM if self.use_logits else BortModel)
        student.config.hidden_dropout_prob = 0.0
        return student

    def _extract(
        self, candidate: Candidate, model_class: type[BortPreTrainedModel] | None = None
    ) -> BortPreTrainedModel:
        """The candidate's weights sliced from the source with this search's importance and selection settings."""
        return extract_subnetwork(
            self.bort,
            candidate,
            self.importance,
            heterogeneous=self.heterogeneous,
            layer_selection=self.layer_selection,
            model_class=model_class,
        )

    def _loss(self, student, projection, batch, *, train: bool) -> torch.Tensor:
        if self.use_logits:
            inputs = {"input_ids": batch["masked_input_ids"], "attention_mask": batch["attention_mask"]}
            with torch.no_grad():
                teacher_logits = self.bort(**inputs).logits
            logits = student(**inputs).logits
            if train:
                return bort_distillation_loss(logits, teacher_logits, batch["labels"])
            positions = batch["labels"] != -100
            return kd_loss(logits[positions], teacher_logits[positions], temperature=1.0)
        hidden = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return hidden_state_loss(hidden, batch["target"], batch["attention_mask"], projection)

    def evaluate_candidate(self, candidate: Candidate, steps: int) -> tuple[float, float]:
        """Extracts `candidate`, distils it for `steps` steps, and returns (held-out ê, wall seconds)."""
        self._prepare()
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        student = self.build_student(candidate)
        student.train()
        for module in student.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if self.freeze_embeddings:
            base = student if isinstance(student, BortModel) else student.bort
            for parameter in base.embeddings.parameters():
                parameter.requires_grad_(False)
        projection = None
        if not self.use_logits:
            teacher_width = self.eval_batches[0]["target"].shape[-1]
            plan = getattr(student, "ose_plan", None)
            projection = make_projection(candidate.hidden_size, teacher_width, plan.dims if plan else None)
        parameters = [p for p in student.parameters() if p.requires_grad]
        if projection is not None:
            parameters += list(projection.parameters())
        optimizer = torch.optim.AdamW(parameters, lr=self.learning_rate, weight_decay=0.0)
        for step in range(steps):
            batch = self.train_batches[step % len(self.train_batches)]
            loss = self._loss(student, projection, batch, train=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        student.eval()
        with torch.no_grad():
            losses = [float(self._loss(student, projection, batch, train=False)) for batch in self.eval_batches]
        return sum(losses) / len(losses), time.perf_counter() - start

    def source_costs(self) -> tuple[int, int, float | None]:
        self._prepare()
        config = self.base_config
        full = Candidate(
            config.num_hidden_layers,
            max(config.layer_num_attention_heads),
            config.hidden_size,
            max(config.layer_intermediate_sizes),
            config.attention_head_size,
        )
        costs = candidate_costs(full, config, self.sequence_length)
        latency = None
        if self.cost == "latency_ms":
            latency = self._latency(full)
        return costs.params, costs.multiply_adds, latency

    def _latency(self, candidate: Candidate) -> float:
        if not hasattr(self, "_latency_store"):
            self._latency_store = LatencyCache(self.latency_cache)
        config = candidate_config(candidate, self.base_config)
        return self._latency_store.measure(
            config, batch_size=self.latency_batch_size, sequence_length=self.sequence_length
        )

    # ----------------------------------------------------------------------------------------------------- search
    def _prune(self, survivors: list[Candidate], results: dict[str, CandidateResult]) -> list[Candidate]:
        """
        Keeps the candidates no other survivor dominates at this interval, where ξ' dominates ξ when its (1+ε)-boxes
        of parameters and cost are both no larger than ξ's (box = ⌊log_{1+ε} value⌋) and its error is lower (ties
        broken by parameters, cost, then key). This is a strict partial order, so every dropped candidate is
        dominated by a survivor: costs within a factor 1+ε, error no higher (at this interval).
        """
        base = math.log1p(self.epsilon)

        def box(result: CandidateResult) -> tuple[int, int]:
            return (
                math.floor(math.log(result.params) / base),
                math.floor(math.log(max(result.objective(self.cost), 1e-12)) / base),
            )

        def rank(candidate: Candidate) -> tuple:
            result = results[candidate.key]
            return (result.error, result.params, result.objective(self.cost), candidate.key)

        boxes = {c.key: box(results[c.key]) for c in survivors}
        ranks = {c.key: rank(c) for c in survivors}
        kept = []
        for candidate in survivors:
            mine = boxes[candidate.key]
            dominated = any(
                boxes[other.key][0] <= mine[0]
                and boxes[other.key][1] <= mine[1]
                and ranks[other.key] < ranks[candidate.key]
                for other in survivors
            )
            if not dominated:
                kept.append(candidate)
        return kept

    def run(self) -> SearchResult:
        """
        Runs (or resumes) the search. Every evaluation is appended to `output_dir/candidates.jsonl` as it finishes;
        a re-run with the same settings skips what is stored. Under `accelerate launch` / `torchrun`, process r
        evaluates candidates r::world of each interval and the processes exchange results between intervals.
        """
        _maybe_init_distributed()
        rank, world = _rank_world()
        self._prepare()
        store = _Store(self.output_dir / STORE_NAME)
        stored = store.load(self.run_id)
        candidates = self.space.candidates()
        costs = {c.key: candidate_costs(c, self.base_config, self.sequence_length) for c in candidates}
        latencies: dict[str, float | None] = dict.fromkeys(costs)
        source_latency = None
        if self.cost == "latency_ms":
            if rank == 0:
                latencies = {c.key: self._latency(c) for c in candidates}
            if world > 1:
                box = [latencies]
                torch.distributed.broadcast_object_list(box, src=0)
                latencies = box[0]
        source_params, source_macs, source_latency = self.source_costs()
        if rank == 0:
            (self.output_dir / "search.json").write_text(
                json.dumps(
                    {
                        "run_id": self.run_id,
                        "epsilon": self.epsilon,
                        "interval_size": self.interval_size,
                        "max_steps": self.max_steps,
                        "rungs": self.rungs,
                        "cost": self.cost,
                        "space": self.space.to_dict(),
                        "dropped": dict(self.space.dropped),
                    },
                    indent=1,
                )
            )
        survivors = candidates
        evaluations: list[CandidateResult] = []
        survivors_per_rung = []
        progress = None
        if self.show_progress and rank == 0:
            from tqdm.auto import tqdm

            progress = tqdm(desc="OSE search", unit="candidate")
        for rung, steps in enumerate(self.rungs):
            survivors_per_rung.append(len(survivors))
            todo = [c for c in survivors if (c.key, steps) not in stored]
            mine = todo[rank::world]
            if progress is not None:
                progress.reset(total=len(mine))
                progress.set_description(f"OSE interval {rung + 1}/{len(self.rungs)} ({steps} steps)")
            new = []
            for candidate in mine:
                error, wall = self.evaluate_candidate(candidate, steps)
                cost = costs[candidate.key]
                result = CandidateResult(
                    candidate=candidate,
                    params=cost.params,
                    encoder_params=cost.encoder_params,
                    multiply_adds=cost.multiply_adds,
                    latency_ms=latencies[candidate.key],
                    error=error,
                    steps=steps,
                    seed=self.seed,
                    wall_time=wall,
                    rung=rung,
                )
                store.append(result, self.run_id)
                new.append(result)
                if progress is not None:
                    progress.update(1)
            if world > 1:
                gathered: list[list[CandidateResult]] = [None] * world  # type: ignore[list-item]
                torch.distributed.all_gather_object(gathered, new)
                new = [r for part in gathered for r in part]
            for result in new:
                stored[result.candidate.key, result.steps] = result
            rung_results = {c.key: stored[c.key, steps] for c in survivors}
            evaluations.extend(rung_results.values())
            if steps < self.max_steps:
                survivors = self._prune(survivors, rung_results)
        if progress is not None:
            progress.close()
        return SearchResult(
            evaluations=evaluations,
            max_steps=self.max_steps,
            epsilon=self.epsilon,
            cost=self.cost,
            num_candidates=len(candidates),
            source_params=source_params,
            source_multiply_adds=source_macs,
            source_latency_ms=source_latency,
            rungs=self.rungs,
            survivors_per_rung=survivors_per_rung,
        )

    def extract(
        self, candidate: Candidate | CandidateResult, save_directory: str | os.PathLike | None = None
    ) -> BortPreTrainedModel:
        """
        The candidate (or a result's candidate) extracted from the source with its dropout restored; saved with the
        source tokenizer when `save_directory` is given.
        """
        if isinstance(candidate, CandidateResult):
            candidate = candidate.candidate
        if not isinstance(candidate, Candidate):
            raise TypeError(f"`candidate` must be a Candidate or a CandidateResult, got {type(candidate).__name__}.")
        self._prepare()
        student = self.build_student(candidate) if self.bort is None else self._extract(candidate)
        if save_directory is not None:
            save_extracted(student, save_directory, self.tokenizer)
        return student


def _texts(dataset: Any, column: str) -> list[str]:
    if dataset is None:
        raise ValueError("`text_dataset` is required: a datasets.Dataset with a text column or a list of strings.")
    if isinstance(dataset, (list, tuple)):
        texts = list(dataset)
    else:
        names = getattr(dataset, "column_names", None)
        if names is None:
            raise TypeError(f"`text_dataset` must be a datasets.Dataset or a list of strings, got {type(dataset)}.")
        if isinstance(names, dict):
            raise TypeError("`text_dataset` is a DatasetDict: pass one split, e.g. dataset['train'].")
        if column not in names:
            raise ValueError(f"`text_column` {column!r} is not a column of `text_dataset` (columns: {names}).")
        texts = list(dataset[column])
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"`text_dataset` must hold non-empty strings; entry {bad[0]} is {texts[bad[0]]!r}.")
    return texts


def _config_of(source: Any):
    from .space import _source_config

    return _source_config(source)


def load_results(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Raw records of a search's store (all runs), skipping a torn last line."""
    path = Path(output_dir) / STORE_NAME
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


__all__ = ["CandidateResult", "Importance", "OSESearch", "SearchResult", "covers", "dominates", "pareto_front"]
