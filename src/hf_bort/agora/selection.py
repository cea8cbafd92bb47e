"""
Agora v2's selection, as library functions (AgoraTrainer uses them; so can any augmentation stage with a teacher):

- [`stratified_split`]: a labelled dev set into a *selection* part and a *stopping* part (seeded, per class);
- [`round_budget`]: the teacher-call budget spread over the remaining rounds;
- [`uncertainty`]: the student's uncertainty per point (margin, entropy, or random scores for the random baseline);
- [`k_center_greedy`]: diversity in an embedding space;
- [`select_near_errors`]: candidates near the errors in the student's space, scored by its uncertainty, picked with
  diversity and a per-class cap, within a budget;
- [`student_view`]: one forward pass of a student over rows, giving its probabilities and sentence embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

UNCERTAINTIES = ("margin", "entropy", "random")
DIVERSITIES = ("kcenter", "none")


def stratified_split(labels: Sequence[int], selection_share: float, seed: int) -> tuple[list[int], list[int]]:
    """
    Splits row positions into `(selection, stopping)`, per class: each class's rows are shuffled with `seed` and
    `round(selection_share × count)` of them go to selection (at least one to each part when the class has two rows or
    more). Both lists are sorted; they are disjoint and cover every row.

    ```python
    >>> from hf_bort.agora.selection import stratified_split
    >>> stratified_split([0, 0, 1, 1, 1, 1], 0.5, seed=0)[0].__len__()
    3
    ```
    """
    if not 0.0 < selection_share < 1.0:
        raise ValueError(f"selection_share must be in (0, 1), got {selection_share}.")
    generator = torch.Generator().manual_seed(int(seed))
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(position)
    selection: list[int] = []
    for label in sorted(by_class):
        rows = by_class[label]
        order = [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
        take = round(selection_share * len(rows))
        if len(rows) >= 2:
            take = min(max(take, 1), len(rows) - 1)
        selection += order[:take]
    chosen = set(selection)
    return sorted(selection), [i for i in range(len(labels)) if i not in chosen]


def round_budget(total: int | None, used: int, rounds_left: int, default: int) -> int:
    """
    Teacher calls for this round: the remaining budget `total - used` spread evenly over the `rounds_left` rounds (this
    one included, rounded up), or `default` when there is no budget (`total=None`).
    """
    if total is None:
        return max(0, default)
    remaining = max(0, total - used)
    return math.ceil(remaining / max(1, rounds_left))


def uncertainty(probs: torch.Tensor, kind: str = "margin", generator: torch.Generator | None = None) -> torch.Tensor:
    """
    How unsure the student is about each row of `probs` ([N, C] probabilities); higher is more uncertain.
    `margin`: 1 − (p₁ − p₂), the gap between the two most likely classes; `entropy`: −Σ p log p; `random`: uniform
    random scores (the random-selection baseline).
    """
    if kind not in UNCERTAINTIES:
        raise ValueError(f"uncertainty kind must be one of {UNCERTAINTIES}, got {kind!r}.")
    probs = probs.float()
    if kind == "random":
        return torch.rand(probs.shape[0], generator=generator)
    if kind == "entropy":
        return -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    if probs.shape[1] < 2:
        return torch.zeros(probs.shape[0])
    top = probs.topk(2, dim=-1).values
    return 1.0 - (top[:, 0] - top[:, 1])


def k_center_greedy(
    embeddings: torch.Tensor,
    k: int,
    *,
    first: int = 0,
    allowed=None,
) -> list[int]:
    """
    Greedy k-center: starts from row `first`, then repeatedly adds the row farthest (Euclidean) from the chosen ones.
    `allowed(row, chosen)` may refuse a row (e.g. a full class); refused rows are skipped. Returns up to `k` rows.
    """
    count = embeddings.shape[0]
    if count == 0 or k <= 0:
        return []
    points = embeddings.float()
    chosen: list[int] = []
    distance = torch.full((count,), math.inf)
    candidate = first
    blocked = torch.zeros(count, dtype=torch.bool)
    while len(chosen) < k:
        if allowed is not None and not allowed(candidate, chosen):
            blocked[candidate] = True
        else:
            chosen.append(candidate)
            blocked[candidate] = True
            distance = torch.minimum(distance, (points - points[candidate]).pow(2).sum(-1))
        open_rows = (~blocked).nonzero().flatten()
        if len(open_rows) == 0:
            break
        candidate = int(open_rows[distance[open_rows].argmax()])
    return chosen


@dataclass
class Selection:
    """What [`select_near_errors`] chose: candidate row positions (best first) and their uncertainty scores."""

    indices: list[int]
    scores: list[float]
    candidates: int
    """How many candidates were scored (near the errors, or every available row)."""


def select_near_errors(
    candidate_embeddings: torch.Tensor,
    candidate_probs: torch.Tensor,
    budget: int,
    *,
    error_embeddings: torch.Tensor | None = None,
    neighbours: int = 16,
    uncertainty_kind: str = "margin",
    diversity: str = "kcenter",
    class_cap: float | None = 0.6,
    shortlist: float = 3.0,
    exclude: Iterable[int] = (),
    generator: torch.Generator | None = None,
) -> Selection:
    """
    Picks at most `budget` rows of a candidate set (e.g. an unlabelled pool) to send to a teacher.

    1. Candidates: with `error_embeddings` ([E, d], the student's embeddings of its errors), the `neighbours` nearest
       available rows (cosine) of each error, pooled; without, every available row (plain active learning). Rows in
       `exclude` (already labelled) are never candidates.
    2. Score: the student's [`uncertainty`] of each candidate (`candidate_probs`, [N, C]).
    3. Pick: `diversity="kcenter"` runs [`k_center_greedy`] over the `ceil(shortlist × budget)` most uncertain
       candidates, starting from the most uncertain; `"none"` takes them in score order. Either way at most
       `ceil(class_cap × budget)` picks share a student-predicted class (`class_cap=None`: no cap).

    Embeddings are the student's own (see [`student_view`]), recomputed whenever the student changes.

    ```python
    >>> import torch
    >>> from hf_bort.agora.selection import select_near_errors
    >>> probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])
    >>> select_near_errors(torch.eye(3), probs, 1, diversity="none").indices
    [0]
    ```
    """
    if uncertainty_kind not in UNCERTAINTIES:
        raise ValueError(f"uncertainty_kind must be one of {UNCERTAINTIES}, got {uncertainty_kind!r}.")
    if diversity not in DIVERSITIES:
        raise ValueError(f"diversity must be one of {DIVERSITIES}, got {diversity!r}.")
    if class_cap is not None and not 0.0 < class_cap <= 1.0:
        raise ValueError(f"class_cap must be None or in (0, 1], got {class_cap}.")
    if candidate_embeddings.shape[0] != candidate_probs.shape[0]:
        raise ValueError("candidate_embeddings and candidate_probs must have one row per candidate.")
    excluded = set(int(i) for i in exclude)
    available = torch.tensor([i for i in range(candidate_embeddings.shape[0]) if i not in excluded], dtype=torch.long)
    if budget <= 0 or len(available) == 0:
        return Selection([], [], 0)
    if error_embeddings is not None:
        if error_embeddings.shape[0] == 0:
            return Selection([], [], 0)
        queries = torch.nn.functional.normalize(error_embeddings.float(), dim=-1)
        keys = torch.nn.functional.normalize(candidate_embeddings[available].float(), dim=-1)
        nearest = (queries @ keys.T).topk(min(neighbours, len(available)), dim=-1).indices
        available = available[nearest.flatten().unique()]
    scores = uncertainty(candidate_probs[available], uncertainty_kind, generator)
    order = scores.argsort(descending=True, stable=True)
    ranked = available[order]
    ranked_scores = scores[order]
    predicted = candidate_probs.argmax(-1)
    cap = math.inf if class_cap is None else max(1, math.ceil(class_cap * budget))
    counts: dict[int, int] = {}

    def allowed(position: int, chosen: list[int]) -> bool:
        label = int(predicted[ranked[position]])
        if counts.get(label, 0) >= cap:
            return False
        counts[label] = counts.get(label, 0) + 1
        return True

    if diversity == "kcenter":
        short = min(len(ranked), max(budget, math.ceil(shortlist * budget)))
        picked = k_center_greedy(candidate_embeddings[ranked[:short]], budget, first=0, allowed=allowed)
    else:
        picked = []
        for position in range(len(ranked)):
            if len(picked) == budget:
                break
            if allowed(position, picked):
                picked.append(position)
    return Selection(
        [int(ranked[p]) for p in picked], [float(ranked_scores[p]) for p in picked], candidates=len(ranked)
    )


@torch.no_grad()
def student_view(model, rows: Sequence[dict], batch_size: int = 64, pad_token_id: int = 0):
    """
    The student's probabilities ([N, C]) and sentence embeddings ([N, d]: mean-pooled last hidden states over
    attended tokens; the logits for a model without hidden states) for model-input `rows`, in eval mode.
    """
    from .collator import pad_points

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs, embeddings = [], []
    keys = ("input_ids", "attention_mask", "token_type_ids", "inputs_embeds")
    try:
        for start in range(0, len(rows), batch_size):
            chunk = [{k: r[k] for k in keys if k in r} for r in rows[start : start + batch_size]]
            batch = {k: v.to(device) for k, v in pad_points(chunk, pad_token_id).items()}
            try:
                out = model(**batch, output_hidden_states=True)
            except TypeError:
                out = model(**batch)
            logits = out.logits.float()
            hidden = getattr(out, "hidden_states", None)
            if hidden is not None and hidden[-1].dim() == 3 and "attention_mask" in batch:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden[-1].dtype)
                pooled = (hidden[-1] * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            elif hidden is not None and hidden[-1].dim() == 3:
                pooled = hidden[-1].mean(1)
            elif hidden is not None:
                pooled = hidden[-1]
            else:
                pooled = logits
            probs.append(logits.softmax(-1).cpu())
            embeddings.append(pooled.float().cpu())
    finally:
        model.train(was_training)
    if not probs:
        return torch.zeros(0, 0), torch.zeros(0, 0)
    return torch.cat(probs), torch.cat(embeddings)
