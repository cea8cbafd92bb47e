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


@dataclass
class AgoraState:
    """Everything a checkpoint needs to continue at the same round with the same augmented set."""

    round: int = 0
    augmented: list[dict] = field(default_factory=list)
    history: list[RoundStats] = field(default_factory=list)
    errors_by_round: list[list[int]] = field(default_factory=list)
    used_pool: set[int] = field(default_factory=set)
    labeller_calls: int = 0

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
        }

    def load_dict(self, data: dict) -> None:
        self.round = int(data["round"])
        self.augmented = list(data["augmented"])
        self.history = [RoundStats(**h) for h in data["history"]]
        self.errors_by_round = [list(e) for e in data["errors_by_round"]]
        self.used_pool = set(data["used_pool"])
        self.labeller_calls = int(data["labeller_calls"])


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

    # Trainer events -------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # A checkpoint taken at the last step of a round, before that round's augmentation: catch up.
        if self.steps_per_round:
            done = min(state.global_step // self.steps_per_round, self.config.agora_rounds)
            while self.agora.round < done:
                self.run_round(model)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.agora.round < self.config.agora_rounds:
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
