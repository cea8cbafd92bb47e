"""
Whether a classification teacher and student are worth their name, on dev only: the majority-class baseline, the
weak-teacher verdict (an error before the search unless `allow_weak_teacher`, then a warning) and the student's gap
to its teacher (a warning). The warnings go into the report (`warnings`), the model card and the CLI output.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np

from .best_dev import classification_scores

logger = logging.getLogger(__name__)
# The search's ê weight of the gold dev labels with a weak teacher (search_gold_weight=None): its KL would reward
# copying a near-constant teacher (a confident wrong teacher outweighs even w = 0.5), so ê is the gold dev CE alone.
WEAK_GOLD_WEIGHT = 1.0


def majority_baseline(train_labels: list[int], dev_labels: list[int]) -> dict[str, Any]:
    """Dev accuracy and macro-F1 of always answering train's most frequent class (ties: the smallest id)."""
    counts = Counter(train_labels)
    majority = min(counts, key=lambda label: (-counts[label], label))
    gold = np.asarray(dev_labels)
    scores = classification_scores(np.full_like(gold, majority), gold)
    return {"class": int(majority), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def teacher_verdict(dev: dict[str, float], baseline: dict[str, Any], margin: float) -> dict[str, Any]:
    """The `source` record's entries: the baseline, and `weak` when dev macro-F1 < baseline macro-F1 + `margin`."""
    return {
        "majority_baseline": baseline,
        "weak_teacher_margin": margin,
        "weak": bool(dev["macro_f1"] < baseline["macro_f1"] + margin),
    }


def weak_teacher_message(record: dict[str, Any]) -> str:
    dev, baseline = record["dev"], record["majority_baseline"]
    return (
        f"The teacher is weak: its dev macro-F1 {100 * dev['macro_f1']:.1f} (accuracy {100 * dev['accuracy']:.1f} %) "
        f"is not {100 * record['weak_teacher_margin']:.0f} points above the majority-class baseline's "
        f"{100 * baseline['macro_f1']:.1f} (accuracy {100 * baseline['accuracy']:.1f} %, always class "
        f"{baseline['class']})"
    )


def check_teacher(record: dict[str, Any], allow_weak: bool) -> str | None:
    """
    Raises before the search when the `source` record's teacher is weak and `allow_weak` is False; with `allow_weak`
    returns the warning (logged) that the report, card and CLI output carry. None for a sound teacher.
    """
    if not record.get("weak"):
        return None
    message = weak_teacher_message(record)
    if not allow_weak:
        raise ValueError(
            f"{message}: a student distilled from it copies a near-constant classifier. Give more labelled rows, more "
            "fine-tuning (finetune_min_steps, finetune_learning_rate) or a fine-tuned classifier as `model`; or "
            "rerun with allow_weak_teacher=True (--allow-weak-teacher; the fine-tuned teacher is kept) to go on with "
            "a warning."
        )
    warning = f"{message}; compress went on because allow_weak_teacher=True: do not trust this student."
    logger.warning(warning)
    return warning


def gold_weight(config, weak: bool) -> float:
    """The search's ê weight of the gold dev labels: `search_gold_weight`, or 0 / 1 for a sound / weak teacher."""
    if config.search_gold_weight is not None:
        return float(config.search_gold_weight)
    return WEAK_GOLD_WEIGHT if weak else 0.0


def student_gap_warning(teacher_dev: dict[str, float], student_dev: dict[str, float], max_gap: float) -> str | None:
    """A warning when the student's dev macro-F1 is more than `max_gap` below the teacher's; else None."""
    gap = teacher_dev["macro_f1"] - student_dev["macro_f1"]
    if gap <= max_gap:
        return None
    warning = (
        f"The student's dev macro-F1 {100 * student_dev['macro_f1']:.1f} is {100 * gap:.1f} points below its "
        f"teacher's {100 * teacher_dev['macro_f1']:.1f} (max_student_gap {100 * max_gap:.0f} points): try a larger "
        "budget, more task_epochs or more data."
    )
    return warning
