"""The interval pruning rule: box dominance in the costs, plain dominance in the error."""

from __future__ import annotations

import math
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from hf_bort.ose import Candidate, CandidateResult, OSESearch


def _results(points):
    survivors, results = [], {}
    for index, (params, macs, error) in enumerate(points):
        candidate = Candidate(1 + index, 1, 8, 8, 8)
        survivors.append(candidate)
        results[candidate.key] = CandidateResult(
            candidate=candidate,
            params=params,
            encoder_params=params,
            multiply_adds=macs,
            latency_ms=None,
            error=error,
            steps=2,
            seed=0,
            wall_time=0.0,
            rung=0,
        )
    return survivors, results


def _prune(epsilon, survivors, results):
    return OSESearch._prune(SimpleNamespace(epsilon=epsilon, cost="multiply_adds"), survivors, results)


def test_keeps_a_cheaper_worse_candidate_and_drops_a_boxed_worse_one():
    survivors, results = _results([(100, 100, 1.0), (101, 101, 1.5), (10, 10, 3.0), (300, 300, 0.5)])
    kept = {c.key for c in _prune(0.25, survivors, results)}
    assert kept == {survivors[0].key, survivors[2].key, survivors[3].key}


@settings(max_examples=100, deadline=None)
@given(
    epsilon=st.sampled_from([0.1, 0.25, 0.5]),
    points=st.lists(
        st.tuples(st.integers(1, 10_000), st.integers(1, 10_000), st.floats(0.01, 10.0)), min_size=1, max_size=30
    ),
)
def test_every_dropped_candidate_is_covered_by_a_survivor(epsilon, points):
    survivors, results = _results(points)
    kept = _prune(epsilon, survivors, results)
    assert kept
    kept_keys = {c.key for c in kept}
    for candidate in survivors:
        if candidate.key in kept_keys:
            continue
        mine = results[candidate.key]
        assert any(
            results[k.key].params <= (1 + epsilon) * mine.params * (1 + 1e-9)
            and results[k.key].multiply_adds <= (1 + epsilon) * mine.multiply_adds * (1 + 1e-9)
            and results[k.key].error <= mine.error
            for k in kept
        ), candidate.key
    # Survivors are the minimal elements: none is dominated by another survivor.
    base = math.log1p(epsilon)
    for a in kept:
        for b in kept:
            ra, rb = results[a.key], results[b.key]
            same_or_lower = math.floor(math.log(rb.params) / base) <= math.floor(math.log(ra.params) / base) and (
                math.floor(math.log(rb.multiply_adds) / base) <= math.floor(math.log(ra.multiply_adds) / base)
            )
            assert not (a is not b and same_or_lower and rb.error < ra.error)
