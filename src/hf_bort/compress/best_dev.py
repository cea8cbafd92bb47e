"""
The best dev checkpoint of a `compress` training run (teacher fine-tuning, task distillation): the Trainer evaluates
on the dev split after every epoch (`eval_strategy="epoch"`, `save_strategy="epoch"`), keeps the best epoch by
`metric` (`load_best_model_at_end`, `metric_for_best_model`) and, with `patience`, stops when `patience` epochs in a
row (counted after the epochs asked for) brought no improvement (`EarlyStoppingCallback`). The test split is never
read here. Also the classification scores (accuracy, macro-F1) every evaluation of `compress` uses, and the epochs a
step minimum asks for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ose.logits import predict

METRICS = ("accuracy", "macro_f1")
# the `qat` stage's checks also score simulated-int8 agreement with fp32 (compress/qat_agreement.py)
AGREEMENT_METRICS = ("int8_fp32_agreement", "agreement_then_accuracy")


def classification_scores(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (averaged over the classes gold or predicted hold) of class-id arrays."""
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    f1s = []
    for label in np.unique(np.concatenate([gold, predicted])):
        tp = float(((predicted == label) & (gold == label)).sum())
        fp = float(((predicted == label) & (gold != label)).sum())
        fn = float(((predicted != label) & (gold == label)).sum())
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float((predicted == gold).mean()), "macro_f1": float(np.mean(f1s)), "rows": int(len(gold))}


def compute_metrics(prediction) -> dict[str, float]:
    """Trainer's `compute_metrics`: the scores of an `EvalPrediction` of classifier logits."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    scores = classification_scores(predict(np.asarray(logits)), np.asarray(prediction.label_ids))
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def epochs_for(epochs: float, min_steps: int, rows: int, batch_size: int) -> float:
    """`epochs`, or more when they give fewer than `min_steps` optimizer steps on `rows` training rows."""
    steps_per_epoch = math.ceil(rows / batch_size)
    return float(max(epochs, math.ceil(min_steps / steps_per_epoch))) if min_steps > 0 else epochs


def trainer_settings(metric: str, eval_steps: int | None = None) -> dict[str, Any]:
    """
    The `TrainingArguments` keywords of an evaluation per epoch (every `eval_steps` optimizer steps when given)
    keeping the best one by `metric`.
    """
    if metric not in METRICS + AGREEMENT_METRICS:
        raise ValueError(f"The best-checkpoint metric must be one of {METRICS + AGREEMENT_METRICS}, got {metric!r}.")
    every = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    if eval_steps is not None:
        every = {
            "eval_strategy": "steps",
            "save_strategy": "steps",
            "eval_steps": eval_steps,
            "save_steps": eval_steps,
        }
    return dict(
        **every,
        save_only_model=True,
        save_total_limit=1,  # with load_best_model_at_end the best checkpoint is kept beside the last
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
    )


def callbacks(patience: int | None, after_epochs: float = 0.0) -> list:
    """
    Early stopping after `patience` epochs without a better dev score, counted only after the first `after_epochs`
    epochs (the epochs asked for: a slow start — a plateau at the majority class before the jump — never stops it).
    """
    from transformers import EarlyStoppingCallback

    class _EarlyStopping(EarlyStoppingCallback):
        def on_evaluate(self, args, state, control, metrics, **kwargs):
            if state.epoch is not None and state.epoch <= after_epochs + 1e-6:
                return
            super().on_evaluate(args, state, control, metrics, **kwargs)

    return [_EarlyStopping(early_stopping_patience=patience)] if patience else []


def best_epoch_record(trainer, metric: str) -> dict[str, Any]:
    """Which epoch was kept and the dev scores of every epoch, from the Trainer's log history."""
    evaluations = [
        {"epoch": round(float(entry["epoch"]), 4), "step": int(entry["step"]), **_scores(entry)}
        for entry in trainer.state.log_history
        if f"eval_{metric}" in entry
    ]
    at_start = [entry for entry in evaluations if entry["step"] == 0]  # `eval_on_start`: no checkpoint to keep
    evaluations = [entry for entry in evaluations if entry["step"] > 0]
    if not evaluations:
        raise RuntimeError("The Trainer recorded no dev evaluation: no best checkpoint can be named.")
    best = evaluations[0]
    for entry in evaluations[1:]:  # the Trainer keeps the first epoch of the best value (strictly greater wins)
        if entry[metric] > best[metric]:
            best = entry
    return {
        "best_checkpoint_metric": metric,
        "best_epoch": best["epoch"],
        "best_step": best["step"],
        "best_dev": {name: best[name] for name in METRICS + AGREEMENT_METRICS if name in best},
        "dev_per_epoch": evaluations,
        "stopped_early": evaluations[-1]["step"] < trainer.state.max_steps,
        **(
            {"dev_at_start": {name: at_start[0][name] for name in METRICS + AGREEMENT_METRICS if name in at_start[0]}}
            if at_start
            else {}
        ),
    }


def _scores(entry: dict[str, Any]) -> dict[str, float]:
    return {name: float(entry[f"eval_{name}"]) for name in METRICS + AGREEMENT_METRICS if f"eval_{name}" in entry}
