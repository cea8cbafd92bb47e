"""Pareto maths of the search: (1+ε)-dominance, the non-dominated set, and (1+ε)-coverage of one front by another."""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float], factor: float = 1.0) -> bool:
    """True when `a` (1+ε)-dominates `b`: a_j ≤ factor·b_j for every objective j (and a ≠ b when factor is 1)."""
    weakly = all(x <= factor * y for x, y in zip(a, b, strict=True))
    return weakly and (factor > 1.0 or any(x < y for x, y in zip(a, b, strict=True)))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (minimisation of every coordinate)."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def covers(
    front: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    epsilon: float,
    *,
    exact: Sequence[int] = (),
) -> bool:
    """
    True when every point of `reference` is (1+ε)-dominated by some point of `front`: each coordinate within a factor
    1+ε, except the coordinates listed in `exact` (indices), which must be no larger. The search's guarantee (see
    docs/ose.md) is coverage with the costs slack and the error exact, `covers(front, reference, ε, exact=[2])` for
    (params, cost, error) points, under successive halving's assumption that the ranking at an interval is the ranking
    at the full budget; without `exact` every coordinate gets the slack.
    """
    factor = 1.0 + epsilon

    def within(f: Sequence[float], r: Sequence[float]) -> bool:
        return all(x <= (1.0 if j in exact else factor) * y for j, (x, y) in enumerate(zip(f, r, strict=True)))

    return all(any(within(f, r) for f in front) for r in reference)


__all__ = ["covers", "dominates", "pareto_front"]
