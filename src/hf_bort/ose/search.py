"""OSESearch: optimal sub-architecture extraction over a grid of candidates, with successive (1+ε)-pruning."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .._outputs import check_output_dir
from ..models.bort.modeling_bort import BortModel, BortPreTrainedModel
from .config import OSEConfig
from .costs import candidate_config
from .distributed import main_process_lock, maybe_init_distributed, rank_world
from .extract import extract_subnetwork, save_extracted
from .importance import Importance
from .inputs import labelled_rows, texts_of
from .pareto import covers, dominates, pareto_front
from .pruning import prune
from .results import CandidateResult, SearchResult
from .search_batches import SearchBatches
from .search_budget import SearchBudget
from .search_prepare import SearchPreparation
from .space import Candidate, SearchSpace
from .store import STORE_NAME, CandidateStore

logger = logging.getLogger(__name__)

LOCK_NAME = ".hf_bort.lock"


class OSESearch(SearchPreparation, SearchBatches, SearchBudget):
    r"""
    Optimal sub-architecture extraction (Bort's OSE) for an encoder: finds the candidates of `space` that are
    Pareto-optimal in parameters p̂, inference cost ĉ (multiply-adds or measured latency) and error ê.

    Every candidate inherits its weights from the source by extraction (importance-ranked layers, heads, neurons,
    residual dims) and is trained for a bounded number of steps against the source; ê says how far it still is
    (see `hf_bort.ose.surrogate`):
    - `objective="task"` (the default when `task_dataset` is given; the source must be a fine-tuned sequence
      classifier): task distillation on the labelled rows, ê = dev KL(teacher ‖ student), dev accuracy recorded.
    - `"mlm"` (sources with an MLM head): Bort's MLM distillation, ê = held-out KL on masked tokens.
    - `"hidden"`: the relative error of the projected last hidden state on held-out texts.
    - `"embedding"` (sentence-transformers sources, no labels; needs `embedding_head`, a
      [`~hf_bort.ose.embedding.SentenceEmbeddingHead`] of the source): sentence-embedding distillation with the
      cosine distance, ê = its mean on the `eval_dataset` texts (or held-out `text_dataset` texts).

    The algorithm (see docs/ose.md): the full budget is `max_steps = ceil(base_steps / epsilon)`; intervals ("rungs")
    train the survivors to s, 2s, 4s, … steps (s = `interval_size`), each survivor **continuing** where the previous
    rung stopped (weights and optimizer state are kept under `output_dir/states/`); training is deterministic, so a
    rung's result is exactly what a run of that many steps gives. After each rung a candidate is dropped when another
    survivor is in a cost box no larger in both costs (boxes are powers of 1+ε) and has a lower error. The survivors
    are trained to `max_steps`; the result's Pareto front is taken over them.

    Settings: an [`OSEConfig`] (`config`), or its fields as keywords (`OSESearch(source, space, epsilon=0.2)` builds
    one; keywords beside a `config` replace its values). Without `space`, the source's scaled grid with the config's
    `layers` / `heads` / `hidden` / `intermediate` overrides.

    A source whose type has no weight mapping to Bort is refused (candidates would start from random weights, which is
    not extraction) unless `allow_random_init=True`.

    Example:

    ```python
    >>> from hf_bort import OSESearch, SearchSpace
    >>> from hf_bort.assets import packaged_minilm_path, load_rotten_tomatoes
    >>> source = packaged_minilm_path()
    >>> search = OSESearch(source, space=SearchSpace.from_source(source), epsilon=0.2,
    ...                    text_dataset=load_rotten_tomatoes()["train"], output_dir="ose-run")  # doctest: +SKIP
    >>> result = search.run()  # doctest: +SKIP
    >>> student = search.extract(result.choose(max_cost_ratio=0.25))  # doctest: +SKIP
    ```
    """

    def __init__(
        self,
        source: str | os.PathLike | Any,
        space: SearchSpace | None = None,
        config: OSEConfig | None = None,
        *,
        text_dataset: Any = None,
        task_dataset: Any = None,
        eval_dataset: Any = None,
        tokenizer: Any = None,
        embedding_head: Any = None,
        **settings: Any,
    ):
        if config is not None and not isinstance(config, OSEConfig):
            raise TypeError(f"`config` must be an OSEConfig, got {type(config).__name__}.")
        # the keyword form (`OSESearch(source, space, epsilon=0.2, ...)`) builds the OSEConfig; with a config, keywords
        # replace its values
        config = OSEConfig(**settings) if config is None else dataclasses.replace(config, **settings)
        self.config = config
        batch_size, num_eval_batches = config.batch_size, config.num_eval_batches
        text_column, label_column = config.text_column, config.label_column
        self.max_steps = config.max_steps_total
        interval_size = max(1, self.max_steps // 8) if config.interval_size is None else config.interval_size
        if space is not None and not isinstance(space, SearchSpace):
            raise TypeError(f"`space` must be a SearchSpace, got {type(space).__name__}.")
        if config.objective == "embedding" and embedding_head is None:
            raise ValueError("objective='embedding' needs `embedding_head` (SentenceEmbeddingHead of the source).")
        if config.objective == "task" and task_dataset is None:
            raise ValueError("objective='task' needs `task_dataset` (labelled rows) and `eval_dataset`.")
        if task_dataset is not None:
            if eval_dataset is None:
                raise ValueError("`task_dataset` needs an `eval_dataset` (labelled dev rows) to measure ê on.")
            pair = config.text_pair_column  # rows of (text, text_pair) pairs (cross-encoders)
            self.task_rows = labelled_rows(task_dataset, text_column, label_column, "task_dataset", pair)
            self.eval_rows = labelled_rows(eval_dataset, text_column, label_column, "eval_dataset", pair)
            self.texts = [text for text, _ in self.task_rows]
            needed_train = batch_size
            if len(self.task_rows) < needed_train:
                raise ValueError(f"`task_dataset` has {len(self.task_rows)} rows; at least {needed_train} needed.")
        else:
            self.task_rows = self.eval_rows = None
            self.texts = texts_of(text_dataset, text_column)
            needed = (num_eval_batches + 1) * batch_size
            if eval_dataset is not None:  # held-out texts given (dev texts): all of text_dataset trains
                self.eval_texts = texts_of(eval_dataset, text_column)
                needed = batch_size
            if len(self.texts) < needed:
                raise ValueError(
                    f"`text_dataset` has {len(self.texts)} texts; at least {needed} are needed "
                    f"({num_eval_batches} held-out batches of {batch_size} plus one training batch)."
                )
        if task_dataset is not None or eval_dataset is None:
            self.eval_texts = None
        self.embedding_head = embedding_head
        self.source = source
        if space is None:
            space = SearchSpace.from_source(
                _config_of(source),
                num_layers=config.axis("layers"),
                num_heads=config.axis("heads"),
                hidden_sizes=config.axis("hidden"),
                intermediate_sizes=config.axis("intermediate"),
            )
        self.space = space
        self.epsilon = float(config.epsilon)
        self.interval_size = interval_size
        self.output_dir = check_output_dir(config.output_dir, "output_dir")  # before any model is loaded
        self.requested_objective = config.objective
        self.batch_size, self.max_length = batch_size, config.max_length
        self.eval_batch_size = batch_size if config.eval_batch_size is None else config.eval_batch_size
        self.num_eval_batches, self.max_train_batches = num_eval_batches, config.max_train_batches
        self.learning_rate, self.seed, self.cost = config.learning_rate, config.seed, config.cost
        self.temperature, self.alpha_ce, self.alpha_kd = config.temperature, config.alpha_ce, config.alpha_kd
        self.sequence_length, self.latency_batch_size = config.sequence_length, config.latency_batch_size
        self.latency_engine = config.latency_engine
        self.latency_cache = Path(config.latency_cache) if config.latency_cache else self.output_dir / "latency.json"
        self.max_cost_ratio, self.max_latency_ms = config.max_cost_ratio, config.max_latency_ms
        self.max_multiply_adds_ratio = config.max_multiply_adds_ratio
        self.importance_method, self.calibration_batches = config.importance_method, config.calibration_batches
        self.heterogeneous, self.layer_selection = config.heterogeneous, config.layer_selection
        self.freeze_embeddings, self.prune = config.freeze_embeddings, config.prune
        self.show_progress, self.allow_random_init = config.show_progress, config.allow_random_init
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

    # ------------------------------------------------------------------------------------------------ evaluation
    def build_student(self, candidate: Candidate) -> BortPreTrainedModel:
        """
        The candidate as the search trains it: weights extracted from the source (a classifier for the task
        objective, an MLM for "mlm", the encoder otherwise), dropout off. Randomly initialised only with
        `allow_random_init=True` and a source without a weight mapping.
        """
        self._prepare()
        torch.manual_seed(self.seed)
        if self.bort is None:
            return BortModel(candidate_config(candidate, self.base_config))
        student = self._extract(candidate, self._student_class())
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

    def _state_path(self, candidate: Candidate) -> Path:
        return self.output_dir / "states" / self.run_id / f"{candidate.key}.pt"

    def evaluate_candidate(self, candidate: Candidate, steps: int) -> tuple[float, float, dict[str, float]]:
        """
        Extracts `candidate`, trains it to `steps` steps — continuing from its saved state when an earlier interval
        left one — and returns (ê, wall seconds, extra metrics). Saves the state for the next interval when
        `steps < max_steps`.
        """
        self._prepare()
        start_time = time.perf_counter()
        student = self.build_student(candidate)
        projection, optimizer = self.trainer.setup(student)
        done = 0
        path = self._state_path(candidate)
        if path.is_file():
            saved = self.trainer.load_state(path, student, projection, optimizer)
            if saved <= steps:
                done = saved
            else:  # a state past this point (another rung layout): start again from the extracted weights
                student = self.build_student(candidate)
                projection, optimizer = self.trainer.setup(student)
        self.trainer.train(student, projection, optimizer, done, steps)
        error, metrics = self.trainer.evaluate(student, projection)
        if not math.isfinite(error):
            raise FloatingPointError(
                f"Candidate {candidate.key} reached a non-finite ê ({error}) after {steps} steps: the training "
                f"diverged (learning_rate={self.learning_rate})."
            )
        if steps < self.max_steps and self.prune:
            self.trainer.save_state(path, student, projection, optimizer, steps)
        metrics = {**metrics, "resumed_from_step": done}
        return error, time.perf_counter() - start_time, metrics

    # ----------------------------------------------------------------------------------------------------- search
    def _prune(self, survivors: list[Candidate], results: dict[str, CandidateResult]) -> list[Candidate]:
        """See [`hf_bort.ose.pruning.prune`]: the survivors no other survivor (1+ε)-box-dominates at this interval."""
        return prune(survivors, results, self.epsilon, self.cost)

    def lock(self):
        """
        Context manager holding the output folder's lock (`output_dir/.hf_bort.lock`, rank 0 under torchrun):
        raises `hf_bort.InUseError` naming the other process when a search already runs there. `run()` takes it
        itself; hold it around `run()` and the files written from its result so they come from one run.
        """
        maybe_init_distributed()
        return main_process_lock(self.output_dir / LOCK_NAME, f"The output folder {str(self.output_dir)!r}")

    def run(self) -> SearchResult:
        """
        Runs (or resumes) the search. Every evaluation is appended to `output_dir/candidates.jsonl` as it finishes
        and each survivor's training state is kept under `output_dir/states/` between intervals; a re-run with the
        same settings skips what is stored and continues survivors where they stopped. Under `torchrun`, process r
        evaluates candidates r::world of each interval and the processes exchange results between intervals. The
        folder is locked for the run ([`lock`]): a second search in it fails at once, naming the first one's pid.
        """
        with self.lock():
            return self._run()

    def _run(self) -> SearchResult:
        rank, world = rank_world()
        self._prepare()
        store = CandidateStore(self.output_dir / STORE_NAME)
        stored = store.load(self.run_id) if rank == 0 else None
        if world > 1:
            # one reading for every rank: a rank that read the store after another had started appending to it would
            # split the interval's candidates differently and wait for results nobody computes
            box = [stored]
            torch.distributed.broadcast_object_list(box, src=0)
            stored = box[0]
        candidates, info = self.candidates_within_budget()
        costs, latencies = info["costs"], info["latencies"]
        source_params, source_macs, source_latency = info["source"]
        if rank == 0:
            (self.output_dir / "search.json").write_text(
                json.dumps(
                    {
                        "run_id": self.run_id,
                        "objective": self.objective,
                        "error": self.trainer.description,
                        "epsilon": self.epsilon,
                        "interval_size": self.interval_size,
                        "max_steps": self.max_steps,
                        "rungs": self.rungs,
                        "cost": self.cost,
                        "max_cost_ratio": self.max_cost_ratio,
                        "max_multiply_adds_ratio": self.max_multiply_adds_ratio,
                        "max_latency_ms": self.max_latency_ms,
                        "candidates_in_budget": len(candidates),
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
                error, wall, metrics = self.evaluate_candidate(candidate, steps)
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
                    metrics=metrics,
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
                kept = self._prune(survivors, rung_results)
                if rank == 0:
                    kept_keys = {c.key for c in kept}
                    for candidate in survivors:
                        if candidate.key not in kept_keys:
                            self._state_path(candidate).unlink(missing_ok=True)
                survivors = kept
        if progress is not None:
            progress.close()
        if rank == 0:  # every survivor is fully trained: the intermediate states are no longer needed
            shutil.rmtree(self.output_dir / "states" / self.run_id, ignore_errors=True)
        return SearchResult(
            evaluations=evaluations,
            max_steps=self.max_steps,
            epsilon=self.epsilon,
            cost=self.cost,
            num_candidates=len(candidates),
            source_params=source_params,
            source_multiply_adds=source_macs,
            source_latency_ms=source_latency,
            objective_name=self.trainer.description,
            rungs=self.rungs,
            survivors_per_rung=survivors_per_rung,
        )

    def extract(
        self, candidate: Candidate | CandidateResult, save_directory: str | os.PathLike | None = None
    ) -> BortPreTrainedModel:
        """
        The candidate (or a result's candidate) extracted from the source with the source's head (a classifier
        keeps its sliced classifier) and its dropout restored; saved with the source tokenizer when
        `save_directory` is given (a sentence-transformers source stays one: see [`save_extracted`]).
        """
        if isinstance(candidate, CandidateResult):
            candidate = candidate.candidate
        if not isinstance(candidate, Candidate):
            raise TypeError(f"`candidate` must be a Candidate or a CandidateResult, got {type(candidate).__name__}.")
        self._prepare()
        student = self.build_student(candidate) if self.bort is None else self._extract(candidate)
        if save_directory is not None:
            save_extracted(student, save_directory, self.tokenizer, source=self.source)
        return student


def _config_of(source: Any):
    from .space import source_config

    return source_config(source)


__all__ = [
    "CandidateResult",
    "Importance",
    "OSESearch",
    "SearchResult",
    "covers",
    "dominates",
    "pareto_front",
]


def _keyword_signature() -> inspect.Signature:
    """`OSESearch(source, space, config, *, data..., **settings)` with each setting as a keyword and its default."""
    own = inspect.signature(OSESearch.__init__)
    parameters = [p for name, p in own.parameters.items() if name not in ("self", "settings")]
    parameters += [
        inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default, annotation=spec.type)
        for spec in dataclasses.fields(OSEConfig)
    ]
    return own.replace(parameters=parameters)


OSESearch.__signature__ = _keyword_signature()  # help(), IDEs and `api_default(OSESearch, name)` see every setting
