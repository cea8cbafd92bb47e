"""
The error surrogate ê of the search: trains an extracted candidate for a bounded number of steps against the source
(its teacher) and measures how far it still is. Uses the losses of `distill.py`, so the search and
[`DistillationTrainer`] optimise the same objectives.

Objectives:
- `"task"`: the source is a fine-tuned sequence classifier and labelled data is given. The candidate (with the
  source's sliced classifier) is trained with task distillation (α_ce·CE on the labels + α_kd·T²·KL to the teacher's
  logits), and ê is the dev-set KL(teacher ‖ student) at T = 1; dev accuracy is recorded beside it. With
  `gold_weight` w > 0 (a weak teacher) ê = (1 − w)·KL + w·CE(gold dev labels), so that a candidate copying a
  near-constant teacher is not preferred to one that gets the labels right. A single-output source (a reranker)
  reads its logit as a Bernoulli: BCE on 0 / 1 labels for CE, the binary KL of the sigmoids, `logit > 0` for accuracy
  (`logits.py`).
- `"mlm"`: the source has an MLM head: Bort's 0.1·MLM + 0.5·T²·KL on masked tokens; ê is the held-out KL.
- `"hidden"`: otherwise: the relative error of the projected last hidden state; ê is its held-out value.
- `"embedding"`: the source is a sentence-transformers model (no labels): the candidate's sentence embeddings (its
  last hidden state through the source's pooling / `Dense` / `Normalize`, the `Dense` sliced to the candidate's
  kept dims: [`SentenceEmbeddingHead`]) are trained towards the teacher's with the cosine distance
  1 − cos(student, teacher); ê is its mean on the dev texts (`dev_mean_cosine` = 1 − ê is recorded beside it).

Training is deterministic (no dropout, a fixed batch order, a constant learning rate), so a candidate trained for
s steps, saved with its optimizer state and continued for s more gives exactly what 2s steps from the extracted
weights give. The search relies on this to continue survivors across intervals instead of restarting them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .. import _device
from ..models.bort.modeling_bort import BortModel, BortPreTrainedModel
from .distill import bort_distillation_loss, hidden_state_loss, kd_loss, make_projection, task_distillation_loss
from .embedding import embedding_loss
from .logits import gold_loss, kl_to_teacher, predict

OBJECTIVES = ("task", "mlm", "hidden", "embedding")
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _base(model: BortPreTrainedModel) -> BortModel:
    return model if isinstance(model, BortModel) else model.bort


def _inputs(batch: dict[str, torch.Tensor], ids_key: str = "input_ids") -> dict[str, torch.Tensor]:
    inputs = {key: batch[key] for key in MODEL_INPUTS[1:] if key in batch}
    inputs["input_ids"] = batch[ids_key]
    return inputs


class CandidateTrainer:
    """
    Trains and scores candidates for [`OSESearch`]. `teacher` is the source as a Bort model; `train_batches` and
    `eval_batches` are lists of tokenised batches (with `labels` for `"task"`, `masked_input_ids` and `labels` for
    `"mlm"`). Teacher outputs that do not change (hidden states, classifier logits) are computed once here.

    `device` (default [`hf_bort._device.compute_device`]: this rank's accelerator, else the CPU) is where the
    teacher, the batches (moved once, here), every candidate and its projection train and are scored.
    """

    def __init__(
        self,
        teacher: BortPreTrainedModel,
        objective: str,
        train_batches: list[dict[str, torch.Tensor]],
        eval_batches: list[dict[str, torch.Tensor]],
        *,
        learning_rate: float,
        freeze_embeddings: bool = True,
        temperature: float = 2.0,
        alpha_ce: float = 0.5,
        alpha_kd: float = 0.5,
        embedding_head: torch.nn.Module | None = None,
        gold_weight: float = 0.0,
        device: torch.device | str | None = None,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")
        if not train_batches or not eval_batches:
            raise ValueError("The surrogate needs at least one training batch and one evaluation batch.")
        self.device = torch.device(device) if device is not None else _device.compute_device()
        self.teacher = _device.to_device(teacher, self.device).eval()
        self.objective = objective
        train_batches[:] = [_device.to_device(batch, self.device) for batch in train_batches]  # the caller's lists
        eval_batches[:] = [_device.to_device(batch, self.device) for batch in eval_batches]
        self.train_batches, self.eval_batches = train_batches, eval_batches
        self.learning_rate, self.freeze_embeddings = learning_rate, freeze_embeddings
        self.temperature, self.alpha_ce, self.alpha_kd = temperature, alpha_ce, alpha_kd
        if objective == "embedding" and embedding_head is None:
            raise ValueError("objective='embedding' needs `embedding_head` (a SentenceEmbeddingHead of the source).")
        self.embedding_head = None if embedding_head is None else _device.to_device(embedding_head, self.device)
        if not 0 <= gold_weight <= 1 or (gold_weight > 0 and objective != "task"):
            raise ValueError(f"`gold_weight` must be in [0, 1] and is the task objective's, got {gold_weight!r}.")
        self.gold_weight = float(gold_weight)
        with torch.no_grad():
            for batch in (*eval_batches, *train_batches):
                if objective == "hidden" and "target" not in batch:
                    batch["target"] = _base(self.teacher)(**_inputs(batch)).last_hidden_state
                elif objective == "embedding" and "target_embedding" not in batch:
                    hidden = _base(self.teacher)(**_inputs(batch)).last_hidden_state
                    batch["target_embedding"] = self.embedding_head(hidden, batch["attention_mask"])
                elif objective == "task" and "teacher_logits" not in batch:
                    batch["teacher_logits"] = self.teacher(**_inputs(batch)).logits

    @property
    def description(self) -> str:
        if self.objective == "task" and self.gold_weight > 0:
            w = self.gold_weight
            return f"dev {1 - w:g}·KL(teacher ‖ student) + {w:g}·CE(gold labels) of the classifier logits"
        return {
            "task": "dev KL(teacher ‖ student) of the classifier logits",
            "mlm": "held-out KL of the masked-LM distributions",
            "hidden": "held-out relative error of the projected last hidden state",
            "embedding": "dev cosine distance 1 - cos of the sentence embeddings to the teacher's",
        }[self.objective]

    # --------------------------------------------------------------------------------------------- set-up / state
    def setup(self, student: BortPreTrainedModel) -> tuple[torch.nn.Module | None, torch.optim.Optimizer]:
        """
        Prepares `student` for training (on the trainer's device, no dropout, frozen embeddings) and returns
        (projection, optimizer).
        """
        _device.to_device(student, self.device).train()
        for module in student.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if self.freeze_embeddings:
            for parameter in _base(student).embeddings.parameters():
                parameter.requires_grad_(False)
        projection = None
        if self.objective == "hidden":
            teacher_width = self.eval_batches[0]["target"].shape[-1]
            plan = getattr(student, "ose_plan", None)
            projection = make_projection(student.config.hidden_size, teacher_width, plan.dims if plan else None)
        elif self.objective == "embedding":  # the frozen head, its Dense sliced to the candidate's dims
            plan = getattr(student, "ose_plan", None)
            teacher_width = _base(self.teacher).config.hidden_size
            projection = self.embedding_head.sliced(plan.dims if plan else None, teacher_width)
        parameters = [p for p in student.parameters() if p.requires_grad]
        if projection is not None:
            projection = _device.to_device(projection, self.device)
            parameters += [p for p in projection.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.learning_rate, weight_decay=0.0)
        return projection, optimizer

    @staticmethod
    def save_state(path: Path, student, projection, optimizer, steps: int) -> None:
        """Writes what continuing needs (trainable weights, projection, optimizer state, steps) atomically."""
        trainable = {name: p.detach().clone() for name, p in student.named_parameters() if p.requires_grad}
        state = {
            "steps": steps,
            "model": trainable,
            "projection": None if projection is None else projection.state_dict(),
            "optimizer": optimizer.state_dict(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(state, temporary)
        os.replace(temporary, path)

    @staticmethod
    def load_state(path: Path, student, projection, optimizer) -> int:
        """Restores a state written by [`save_state`] into a freshly extracted `student`; returns its step count."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - truncated, garbage or not a torch file: name it
            raise ValueError(
                f"{path} (a saved search state) cannot be read ({type(error).__name__}: {str(error)[:200]}): delete "
                "it to retrain that candidate from its extracted weights."
            ) from None
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "steps" not in state:
            raise ValueError(
                f"{path} is not a search state (a dict with 'model', 'optimizer' and 'steps'): delete it to retrain "
                "that candidate from its extracted weights."
            )
        missing = student.load_state_dict(state["model"], strict=False)
        trainable = {name for name, p in student.named_parameters() if p.requires_grad}
        if set(state["model"]) != trainable or missing.unexpected_keys:
            raise ValueError(f"{path} does not hold this candidate's trainable weights; delete it to retrain.")
        if projection is not None:
            projection.load_state_dict(state["projection"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["steps"])

    # ----------------------------------------------------------------------------------------- training / scoring
    def loss(self, student, projection, batch: dict[str, torch.Tensor], *, train: bool) -> torch.Tensor:
        if self.objective == "task":
            logits = student(**_inputs(batch)).logits
            if train:
                return task_distillation_loss(
                    logits,
                    batch["teacher_logits"],
                    batch["labels"],
                    temperature=self.temperature,
                    alpha_ce=self.alpha_ce,
                    alpha_kd=self.alpha_kd,
                )
            return kl_to_teacher(logits, batch["teacher_logits"], temperature=1.0)
        if self.objective == "mlm":
            inputs = _inputs(batch, "masked_input_ids")
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
            logits = student(**inputs).logits
            if train:
                return bort_distillation_loss(logits, teacher_logits, batch["labels"], temperature=self.temperature)
            positions = batch["labels"] != -100
            return kd_loss(logits[positions], teacher_logits[positions], temperature=1.0)
        hidden = _base(student)(**_inputs(batch)).last_hidden_state
        if self.objective == "embedding":
            return embedding_loss(projection(hidden, batch["attention_mask"]), batch["target_embedding"])
        return hidden_state_loss(hidden, batch["target"], batch["attention_mask"], projection)

    def train(self, student, projection, optimizer, start: int, stop: int) -> None:
        """Training steps `start` … `stop - 1`; step t always uses batch t mod (number of batches)."""
        student.train()
        for step in range(start, stop):
            batch = self.train_batches[step % len(self.train_batches)]
            loss = self.loss(student, projection, batch, train=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def evaluate(self, student, projection) -> tuple[float, dict[str, float]]:
        """
        (ê, extra metrics): ê averaged over the evaluation rows; for the task objective also `dev_accuracy`,
        `dev_kl` and `dev_gold_loss` (the two terms of ê, whatever `gold_weight` mixes of them).
        """
        student.eval()
        total, rows, correct, kl_total, gold_total = 0.0, 0, 0, 0.0, 0.0
        with torch.no_grad():
            for batch in self.eval_batches:
                n = batch["input_ids"].shape[0]
                if self.objective == "task":
                    logits = student(**_inputs(batch)).logits
                    kl = float(kl_to_teacher(logits, batch["teacher_logits"], temperature=1.0))
                    gold = float(gold_loss(logits, batch["labels"]))
                    error = (1 - self.gold_weight) * kl + self.gold_weight * gold if self.gold_weight > 0 else kl
                    total, kl_total, gold_total = total + error * n, kl_total + kl * n, gold_total + gold * n
                    correct += int((predict(logits) == batch["labels"]).sum())
                else:
                    total += float(self.loss(student, projection, batch, train=False)) * n
                rows += n
        metrics: dict[str, Any] = {}
        if self.objective == "task":
            metrics.update(dev_accuracy=correct / rows, dev_kl=kl_total / rows, dev_gold_loss=gold_total / rows)
        if self.objective == "embedding":
            metrics["dev_mean_cosine"] = 1 - total / rows
        return total / rows, metrics
