"""
The dev gate of the `augment` stage of `compress`: whether the student continued on the augmented rows replaces the
task-distilled student.

The rule (one standard error): the continued student is kept when its dev `best_checkpoint_metric` (the metric the
`task` stage picks its epoch by; macro-F1 by default) beats the task student's by more than one standard error of
that metric on dev. The standard error is the binomial one of the task student's dev accuracy p on n dev rows,
sqrt(p(1 - p) / n). For accuracy that is its standard error; for macro-F1 it is an approximation (macro-F1 has no
closed-form standard error; on balanced classes it moves about as accuracy does), and the record says so. A student
no better than that on dev is indistinguishable from the task student within dev's noise, so the cheaper claim — no
augmentation — is kept.

`augment="always"` keeps the continued student whatever the gate says (for ablations); the gate's numbers are
recorded either way.
"""

from __future__ import annotations

import math
from typing import Any

SE_BASIS = "binomial standard error of the task student's dev accuracy p on n dev rows: sqrt(p(1 - p) / n)"
MACRO_F1_NOTE = "used for macro-F1 as an approximation (macro-F1 has no closed-form standard error)"


def standard_error(accuracy: float, dev_rows: int) -> float:
    """sqrt(p(1 - p) / n): the binomial standard error of a dev accuracy `p` on `n` rows."""
    if dev_rows < 1:
        raise ValueError(f"dev_rows must be >= 1, got {dev_rows!r}.")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}.")
    return math.sqrt(accuracy * (1.0 - accuracy) / dev_rows)


def decide(
    before: dict[str, float], after: dict[str, float], *, metric: str, dev_rows: int, mode: str
) -> dict[str, Any]:
    """
    The gate's record: `before` (the task student's dev scores) and `after` (the continued student's), compared on
    `metric` with the threshold before + one standard error (module docstring); `decision` is "kept" when `after`
    passes it or `mode` is "always", else "rejected", with `why`.
    """
    if mode not in ("auto", "always"):
        raise ValueError(f"mode must be 'auto' or 'always', got {mode!r}.")
    if metric not in before or metric not in after:
        raise ValueError(f"metric {metric!r} is missing from the dev scores ({sorted(before)}, {sorted(after)}).")
    se = standard_error(before["accuracy"], dev_rows)
    threshold = before[metric] + se
    gain = after[metric] - before[metric]
    passes = after[metric] > threshold
    compared = f"dev {metric} {before[metric]:.4f} → {after[metric]:.4f} ({gain:+.4f}; one standard error {se:.4f})"
    if passes:
        why = f"{compared}: the gain is more than one standard error"
    else:
        why = f"{compared}: the gain is not more than one standard error"
    kept = passes or mode == "always"
    if mode == "always":
        why += "; augment='always' keeps the continued student regardless"
    elif not passes:
        why += ", so the task student is kept"
    return {
        "metric": metric,
        "dev_before": before,
        "dev_after": after,
        "dev_rows": dev_rows,
        "standard_error": se,
        "standard_error_basis": SE_BASIS + ("; " + MACRO_F1_NOTE if metric == "macro_f1" else ""),
        "threshold": threshold,
        "passes_gate": passes,
        "mode": mode,
        "decision": "kept" if kept else "rejected",
        "why": why,
    }
