"""`benchmarks/agora_v2.py` decides v2's switches (retraining, self-training) on the stopping part only, pooled."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agora_v2(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("agora_v2")


def _runs(v2: list[float], no_st: list[float], test: float = 0.5) -> list[dict]:
    runs = []
    for seed, (a, b) in enumerate(zip(v2, no_st, strict=True)):
        for setting, stopping in (("agora_v2", a), ("agora_v2_no_st", b)):
            runs.append(
                {"task": "rt", "n": 64, "seed": seed, "setting": setting, "stopping_accuracy": stopping, "test": test}
            )
    return runs


def test_self_training_stays_the_default_unless_dropping_it_wins_by_more_than_one_standard_error(agora_v2):
    rows = {"rt": 250}
    # 4 pairs x 250 rows: one standard error of 70 % is sqrt(.7 * .3 / 1000) = 1.45 points
    close = agora_v2.self_training_default(_runs([0.70] * 4, [0.71] * 4), rows)
    assert close["choice"] == "self_training (default kept)"
    assert close["stopping_rows"] == 1000
    assert close["one_standard_error"] == pytest.approx(100 * (0.7 * 0.3 / 1000) ** 0.5)
    assert close["no_self_training_stopping_accuracy"] == pytest.approx(71.0)
    far = agora_v2.self_training_default(_runs([0.70] * 4, [0.72] * 4), rows)
    assert far["choice"] == "no_self_training"
    assert "+2.00 points" in far["why"]


def test_a_run_without_its_pair_is_not_pooled_and_no_pair_is_no_decision(agora_v2):
    runs = _runs([0.70, 0.70], [0.80, 0.80])
    runs.append({"task": "rt", "n": 64, "seed": 9, "setting": "agora_v2", "stopping_accuracy": 0.1})
    decision = agora_v2.self_training_default(runs, {"rt": 250})
    assert decision["pairs"] == ["rt n=64 seed 0", "rt n=64 seed 1"]
    assert agora_v2.retrain_default(runs, {"rt": 250}) is None  # no "agora_v2_continue" run at all
