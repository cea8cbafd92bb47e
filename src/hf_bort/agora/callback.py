"""[`AgoraCallback`]: runs one Agora round at the end of every Trainer epoch (one epoch = one round)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from transformers import TrainerCallback

from .collator import pad_points

STATE_NAME = "agora_state.pt"


@dataclass
class RoundStats:
    """Statistics of one Agora round (logged under `agora/…` keys too)."""

    round: int
    dev_accuracy: float
    dev_errors: int
    replayed_errors: int
    samples_drawn: int
    accepted: int
    labeller_agreement: float | None
    """Share of the drawn samples whose labeller label equals the gold label of the dev point they came from."""
    train_size: int
    labeller_calls_total: int
    seconds: float
    """Round time without labeller inference (dev prediction, sampling, bookkeeping)."""
    labeller_seconds: float
    # v2 only (None under v1) -------------------------------------------------------------------------------------
    stopping_accuracy: float | None = None
    """Accuracy on the stopping part of dev (never used for selection)."""
    train_errors: int | None = None
    """Gold training rows the student gets wrong (errors too, beside the selection part's `dev_errors`)."""
    disagreements: int | None = None
    """Teacher-labelled rows whose teacher argmax the student does not predict (errors too)."""
    candidates: int | None = None
    """Candidates scored this round (near the errors, or the whole unused pool)."""
    round_budget: int | None = None
    """Teacher calls allowed this round (the remaining budget over the remaining rounds)."""
    teacher_student_agreement: float | None = None
    """Share of this round's teacher-labelled samples whose teacher label the student already predicted."""
    self_trained: int | None = None
    """Pool rows trained on with the student's own labels this round (no teacher calls)."""


@dataclass
class AgoraState:
    """Everything a checkpoint needs to continue at the same round with the same augmented set."""

    round: int = 0
    augmented: list[dict] = field(default_factory=list)
    history: list[RoundStats] = field(default_factory=list)
    errors_by_round: list[list[int]] = field(default_factory=list)
    used_pool: set[int] = field(default_factory=set)
    labeller_calls: int = 0
    self_trained: list[dict] = field(default_factory=list)
    """v2: the current round's self-training rows (replaced every round)."""
    pending_reset: bool = False
    """v2 with retraining: the next round starts from the initial weights (done when that round begins)."""

    def reset(self) -> None:
        self.load_dict(AgoraState().to_dict())

    def to_dict(self) -> dict:
        return {
            "round": self.round,
            "augmented": self.augmented,
            "history": [asdict(h) for h in self.history],
            "errors_by_round": self.errors_by_round,
            "used_pool": sorted(self.used_pool),
            "labeller_calls": self.labeller_calls,
            "self_trained": self.self_trained,
            "pending_reset": self.pending_reset,
        }

    def load_dict(self, data: dict) -> None:
        self.round = int(data["round"])
        self.augmented = list(data["augmented"])
        self.history = [RoundStats(**h) for h in data["history"]]
        self.errors_by_round = [list(e) for e in data["errors_by_round"]]
        self.used_pool = set(data["used_pool"])
        self.labeller_calls = int(data["labeller_calls"])
        self.self_trained = list(data.get("self_trained", []))
        self.pending_reset = bool(data.get("pending_reset", False))


class AgoraCallback(TrainerCallback):
    """
    Drives the Agora rounds inside one `Trainer.train()` call. At the end of each epoch (= round) it predicts the dev
    set, takes the misclassified points (plus, with replay, earlier rounds' errors), asks the sampler for neighbours,
    labels them with the labeller, keeps those at or above the confidence threshold, and appends them to the shared
    [`AgoraState`], which the training dataset reads. It logs the round's [`RoundStats`] through `log_fn` (the
    trainer's `log`, so they reach `state.log_history`) and stores the state in every checkpoint.

    Callbacks do not receive the trainer, so [`AgoraTrainer`] builds this one with what it needs.
    """

    def __init__(
        self,
        *,
        config,
        state: AgoraState,
        dev_points: list[dict],
        sampler,
        labeller,
        train_size: Callable[[], int],
        log_fn: Callable[[dict], None],
        pad_token_id: int = 0,
        train_points: list[dict] | None = None,
        stopping_points: list[dict] | None = None,
        pool_rows: Callable[[], list[dict]] | None = None,
        num_labels: int | None = None,
    ):
        self.config = config
        self.agora = state
        self.dev_points = dev_points
        self.sampler = sampler
        self.labeller = labeller
        self.train_size = train_size
        self.log_fn = log_fn
        self.pad_token_id = pad_token_id
        self.steps_per_round: int | None = None
        # v2: gold training rows, the stopping part, the tokenized pool (lazily) and the initial weights to retrain
        self.train_points = train_points or []
        self.stopping_points = stopping_points or []
        self.pool_rows = pool_rows
        self.num_labels = num_labels
        self.initial_state: dict | None = None

    # Trainer events -------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.config.agora_v2 and self.config.agora_retrain and self.initial_state is None and model is not None:
            self.initial_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        # A checkpoint taken at the last step of a round, before that round's augmentation: catch up.
        if self.steps_per_round:
            done = min(state.global_step // self.steps_per_round, self.config.agora_rounds)
            while self.agora.round < done:
                self.run_round_v2(model) if self.config.agora_v2 else self.run_round(model)

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        # v2 retraining: the round after an augmentation starts from the initial weights with a fresh optimizer state
        # (done here, not at the previous epoch's end, so Trainer's epoch-end evaluation and checkpoint see the
        # trained model).
        if self.agora.pending_reset and self.initial_state is not None and model is not None:
            model.load_state_dict(self.initial_state)
            inner = getattr(optimizer, "optimizer", optimizer)
            if inner is not None:
                inner.state.clear()
        self.agora.pending_reset = False

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.agora.round < self.config.agora_rounds:
            if self.config.agora_v2:
                self.run_round_v2(model)
            else:
                self.run_round(model)

    # The round ---------------------------------------------------------------------------------------------------
    def label_on_main_process(self, samples: list[dict]):
        """
        The labeller's result for `samples`. Under torch.distributed every process draws the same samples, so only
        rank 0 calls the labeller and broadcasts its labels: `agora_budget` and `labeller_calls` count labeller calls
        of the whole run, not per process. A labeller error on rank 0 is raised on every rank.
        """
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return self.labeller(samples)
        box: list = [None]
        if dist.get_rank() == 0:
            try:
                box[0] = ("ok", self.labeller(samples))
            except Exception as error:  # re-raised below, after the other ranks learn of it
                box[0] = ("error", f"{type(error).__name__}: {error}")
                failure = error
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            if dist.get_rank() == 0:
                raise failure
            raise RuntimeError(f"The Agora labeller failed on rank 0: {value}")
        return value

    @torch.no_grad()
    def predict(self, model) -> list[int]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        predictions: list[int] = []
        size = self.config.per_device_eval_batch_size
        try:
            for start in range(0, len(self.dev_points), size):
                rows = [{k: v for k, v in p.items() if k != "text"} for p in self.dev_points[start : start + size]]
                batch = pad_points(rows, self.pad_token_id)
                batch.pop("labels", None)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                predictions += logits.argmax(-1).tolist()
        finally:
            model.train(was_training)
        return predictions

    def run_round(self, model) -> RoundStats:
        config, agora = self.config, self.agora
        start = time.perf_counter()
        number = agora.round + 1
        generator = torch.Generator().manual_seed(config.agora_generator_seed * 1_000_003 + number)
        gold = [int(p["labels"]) for p in self.dev_points]
        predictions = self.predict(model)
        errors = [i for i, (p, g) in enumerate(zip(predictions, gold, strict=True)) if p != g]
        replayed = []
        if config.agora_replay:
            seen = set(errors)
            for earlier in agora.errors_by_round[-config.agora_replay :]:
                replayed += [i for i in earlier if i not in seen and not seen.add(i)]
        agora.errors_by_round.append(errors)
        targets = errors + replayed
        if config.agora_max_errors is not None and len(targets) > config.agora_max_errors:
            keep = torch.randperm(len(targets), generator=generator)[: config.agora_max_errors].sort().values
            targets = [targets[i] for i in keep.tolist()]
        per_error = config.agora_samples_per_error
        remaining = math.inf if config.agora_budget is None else config.agora_budget - agora.labeller_calls
        if remaining < len(targets) * per_error:
            targets = targets[: max(0, math.ceil(remaining / per_error))]
        samples = []
        if targets:
            points = [self.dev_points[i] for i in targets]
            samples = self.sampler.sample(points, model, per_error, generator, exclude=frozenset(agora.used_pool))
            if remaining < len(samples):
                samples = samples[: int(remaining)]
        labeller_seconds, accepted, agreement = 0.0, 0, None
        if samples:
            tick = time.perf_counter()
            result = self.label_on_main_process(samples)
            labeller_seconds = time.perf_counter() - tick
            agora.labeller_calls += len(samples)
            matches = 0
            for sample, label, confidence in zip(samples, result.labels, result.confidences, strict=True):
                matches += int(label == gold[targets[sample["source"]]])
                if "pool_index" in sample:
                    agora.used_pool.add(int(sample["pool_index"]))
                if confidence >= config.agora_confidence_threshold:
                    item = {
                        k: torch.as_tensor(sample[k]).detach().cpu()
                        for k in ("input_ids", "attention_mask", "inputs_embeds")
                        if k in sample
                    }
                    item["labels"] = int(label)
                    agora.augmented.append(item)
                    accepted += 1
            agreement = matches / len(samples)
        agora.round = number
        stats = RoundStats(
            round=number,
            dev_accuracy=1.0 - len(errors) / max(1, len(gold)),
            dev_errors=len(errors),
            replayed_errors=len(replayed),
            samples_drawn=len(samples),
            accepted=accepted,
            labeller_agreement=agreement,
            train_size=self.train_size(),
            labeller_calls_total=agora.labeller_calls,
            seconds=time.perf_counter() - start - labeller_seconds,
            labeller_seconds=labeller_seconds,
        )
        agora.history.append(stats)
        self.log_fn({f"agora/{k}": v for k, v in asdict(stats).items() if v is not None})
        return stats

    # Agora v2 ------------------------------------------------------------------------------------------------------
    def _view(self, model, rows):
        from .selection import student_view

        return student_view(model, rows, self.config.per_device_eval_batch_size, self.pad_token_id)

    @staticmethod
    def _inputs(row: dict) -> dict:
        return {
            k: torch.as_tensor(row[k]).detach().cpu()
            for k in ("input_ids", "attention_mask", "token_type_ids", "inputs_embeds")
            if k in row
        }

    def run_round_v2(self, model) -> RoundStats:
        """
        One v2 round: errors (selection part, gold training rows, teacher disagreements) → candidates near them in the
        student's space (or the whole pool) → the round's share of the budget picked by uncertainty with diversity
        and a class cap ([`~agora.selection.select_near_errors`]) → teacher probabilities (soft rows, weighted by
        confidence) → selection gold rows join after round 0 → self-training rows → reset pending when retraining.
        """
        from .selection import round_budget, select_near_errors

        config, agora = self.config, self.agora
        start = time.perf_counter()
        number = agora.round + 1
        generator = torch.Generator().manual_seed(config.agora_generator_seed * 1_000_003 + number)

        gold = torch.tensor([int(p["labels"]) for p in self.dev_points], dtype=torch.long)
        sel_probs, sel_emb = self._view(model, self.dev_points)
        sel_errors = (sel_probs.argmax(-1) != gold).nonzero().flatten().tolist() if len(gold) else []
        train_gold = torch.tensor([int(p["labels"]) for p in self.train_points], dtype=torch.long)
        tr_probs, tr_emb = self._view(model, self.train_points)
        train_errors = (tr_probs.argmax(-1) != train_gold).nonzero().flatten().tolist() if len(train_gold) else []
        taught = [row for row in agora.augmented if "agora_soft" in row]
        t_probs, t_emb = self._view(model, taught)
        if taught:
            teacher_argmax = torch.stack([torch.as_tensor(r["agora_soft"]) for r in taught]).argmax(-1)
            disagree = (t_probs.argmax(-1) != teacher_argmax).nonzero().flatten().tolist()
        else:
            disagree = []
        error_points = (
            [self.dev_points[i] for i in sel_errors]
            + [self.train_points[i] for i in train_errors]
            + [taught[i] for i in disagree]
        )
        parts = [e[i] for e, i in ((sel_emb, sel_errors), (tr_emb, train_errors), (t_emb, disagree)) if len(i)]
        error_emb = torch.cat(parts) if parts else torch.zeros(0, 1)
        agora.errors_by_round.append(sel_errors)

        rounds_left = config.agora_rounds - agora.round
        budget = round_budget(
            config.agora_budget,
            agora.labeller_calls,
            rounds_left,
            default=config.agora_samples_per_error * len(error_points),
        )
        pool = self.pool_rows() if self.pool_rows is not None else None
        pool_probs = None
        near = config.agora_candidates == "near_errors"
        selection_kwargs = dict(
            neighbours=config.agora_candidates_per_error,
            uncertainty_kind=config.agora_uncertainty,
            diversity=config.agora_diversity,
            class_cap=config.agora_class_cap,
            generator=generator,
        )
        if pool is not None:
            pool_probs, pool_emb = self._view(model, pool)
            chosen = select_near_errors(
                pool_emb,
                pool_probs,
                budget,
                error_embeddings=error_emb if near else None,
                exclude=agora.used_pool,
                **selection_kwargs,
            )
            samples = [dict(pool[i], pool_index=i) for i in chosen.indices]
            student_probs = pool_probs[chosen.indices] if chosen.indices else torch.zeros(0, 1)
        else:
            drawn = []
            if error_points and budget > 0:
                drawn = self.sampler.sample(error_points, model, config.agora_candidates_per_error, generator)
            d_probs, d_emb = self._view(model, drawn)
            chosen = select_near_errors(d_emb, d_probs, budget, **selection_kwargs) if drawn else None
            samples = [drawn[i] for i in chosen.indices] if chosen else []
            student_probs = d_probs[chosen.indices] if samples else torch.zeros(0, 1)

        labeller_seconds, accepted, agreement, student_agreement = 0.0, 0, None, None
        if samples:
            tick = time.perf_counter()
            result = self.label_on_main_process(samples)
            labeller_seconds = time.perf_counter() - tick
            agora.labeller_calls += len(samples)
            width = self.num_labels or len(result.probabilities[0])
            teacher = result.distributions(width)
            student_agreement = float((student_probs.argmax(-1) == teacher.argmax(-1)).float().mean())
            for sample, label, confidence, soft in zip(
                samples, result.labels, result.confidences, teacher, strict=True
            ):
                if "pool_index" in sample:
                    agora.used_pool.add(int(sample["pool_index"]))
                if confidence < config.agora_confidence_threshold:
                    continue
                item = self._inputs(sample)
                item["labels"] = int(label)
                if config.agora_soft_labels:
                    item["agora_soft"] = soft.clone()
                item["agora_weight"] = float(confidence) if config.agora_confidence_weighting else 1.0
                if "pool_index" in sample:
                    item["pool_index"] = int(sample["pool_index"])
                agora.augmented.append(item)
                accepted += 1
        if agora.round == 0:  # the selection part's gold labels join training after round 0
            for point in self.dev_points:
                agora.augmented.append({**self._inputs(point), "labels": int(point["labels"]), "agora_weight": 1.0})

        agora.self_trained = []
        if pool is not None and config.agora_self_training:
            agora.self_trained = self._self_training(pool, pool_probs)

        stopping_accuracy = None
        if self.stopping_points:
            stop_probs, _ = self._view(model, self.stopping_points)
            stop_gold = torch.tensor([int(p["labels"]) for p in self.stopping_points])
            stopping_accuracy = float((stop_probs.argmax(-1) == stop_gold).float().mean())
        agora.pending_reset = bool(config.agora_retrain)
        agora.round = number
        stats = RoundStats(
            round=number,
            dev_accuracy=1.0 - len(sel_errors) / max(1, len(gold)),
            dev_errors=len(sel_errors),
            replayed_errors=0,
            samples_drawn=len(samples),
            accepted=accepted,
            labeller_agreement=agreement,
            train_size=self.train_size(),
            labeller_calls_total=agora.labeller_calls,
            seconds=time.perf_counter() - start - labeller_seconds,
            labeller_seconds=labeller_seconds,
            stopping_accuracy=stopping_accuracy,
            train_errors=len(train_errors),
            disagreements=len(disagree),
            candidates=chosen.candidates if chosen is not None else 0,
            round_budget=budget,
            teacher_student_agreement=student_agreement,
            self_trained=len(agora.self_trained),
        )
        agora.history.append(stats)
        self.log_fn({f"agora/{k}": v for k, v in asdict(stats).items() if v is not None})
        return stats

    def _self_training(self, pool: list[dict], pool_probs: torch.Tensor) -> list[dict]:
        """Unused pool rows the student is confident about, balanced over its predicted classes, with its labels."""
        config = self.config
        confidence, predicted = pool_probs.max(-1)
        used = self.agora.used_pool
        classes = pool_probs.shape[1]
        per_class = max(1, config.agora_self_training_max // classes)
        rows = []
        for label in range(classes):
            mask = (predicted == label) & (confidence >= config.agora_self_training_threshold)
            candidates = [i for i in mask.nonzero().flatten().tolist() if i not in used]
            candidates.sort(key=lambda i: -float(confidence[i]))
            for i in candidates[:per_class]:
                rows.append(
                    {
                        **self._inputs(pool[i]),
                        "labels": label,
                        "agora_weight": float(config.agora_self_training_weight),
                        "pool_index": i,
                    }
                )
        return rows
