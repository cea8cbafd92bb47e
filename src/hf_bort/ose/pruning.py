"""The search's pruning rule after each interval: (1+ε)-box dominance in (parameters, cost), then error."""

from __future__ import annotations

import math

from .results import CandidateResult
from .space import Candidate


def prune(
    survivors: list[Candidate], results: dict[str, CandidateResult], epsilon: float, cost: str
) -> list[Candidate]:
    """
    Keeps the candidates no other survivor dominates at this interval, where ξ' dominates ξ when its (1+ε)-boxes
    of parameters and cost are both no larger than ξ's (box = ⌊log_{1+ε} value⌋) and its error is lower (ties
    broken by parameters, cost, then key). This is a strict partial order, so every dropped candidate is
    dominated by a survivor: costs within a factor 1+ε, error no higher (at this interval).
    """
    base = math.log1p(epsilon)

    def box(result: CandidateResult) -> tuple[int, int]:
        return (
            math.floor(math.log(result.params) / base),
            math.floor(math.log(max(result.objective(cost), 1e-12)) / base),
        )

    def rank(candidate: Candidate) -> tuple:
        result = results[candidate.key]
        return (result.error, result.params, result.objective(cost), candidate.key)

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
