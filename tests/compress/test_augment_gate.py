"""The `augment` stage's settings and its dev gate (`compress/augment_gate.py`): numbers in, decision out."""

from __future__ import annotations

import math

import pytest

from hf_bort import CompressionConfig
from hf_bort.compress import augment_gate
from hf_bort.compress.config_checks import augment_budget


def _scores(accuracy: float, macro_f1: float) -> dict[str, float]:
    return {"accuracy": accuracy, "macro_f1": macro_f1, "rows": 100}


def test_the_standard_error_is_the_binomial_one_of_the_task_student_s_dev_accuracy():
    assert augment_gate.standard_error(0.8, 100) == pytest.approx(0.04)
    assert augment_gate.standard_error(1.0, 50) == 0.0
    with pytest.raises(ValueError, match="dev_rows"):
        augment_gate.standard_error(0.5, 0)


@pytest.mark.parametrize(
    "after, decision",
    [
        (_scores(0.85, 0.80 + 0.041), "kept"),  # more than one SE (0.04) above: kept
        (_scores(0.85, 0.80 + 0.039), "rejected"),  # a gain, but within one SE: the task student stays
        (_scores(0.80, 0.80), "rejected"),
        (_scores(0.70, 0.70), "rejected"),
    ],
)
def test_auto_keeps_only_a_gain_of_more_than_one_standard_error(after, decision):
    record = augment_gate.decide(_scores(0.8, 0.80), after, metric="macro_f1", dev_rows=100, mode="auto")
    assert record["decision"] == decision and record["passes_gate"] is (decision == "kept")
    assert record["standard_error"] == pytest.approx(0.04) and record["threshold"] == pytest.approx(0.84)
    assert record["dev_before"]["macro_f1"] == 0.80 and record["dev_after"] == after
    assert "approximation" in record["standard_error_basis"]  # the SE of accuracy stands in for macro-F1's
    assert ("not more than one standard error" in record["why"]) is (decision == "rejected")


def test_the_gate_compares_the_metric_it_is_given():
    before, after = _scores(0.75, 0.60), _scores(0.75, 0.70)  # macro-F1 up 0.10, accuracy unchanged
    se = math.sqrt(0.75 * 0.25 / 64)
    by_f1 = augment_gate.decide(before, after, metric="macro_f1", dev_rows=64, mode="auto")
    by_accuracy = augment_gate.decide(before, after, metric="accuracy", dev_rows=64, mode="auto")
    assert by_f1["decision"] == "kept" and by_accuracy["decision"] == "rejected"
    assert by_accuracy["threshold"] == pytest.approx(0.75 + se)
    assert "approximation" not in by_accuracy["standard_error_basis"]


def test_always_keeps_and_still_records_the_gate():
    record = augment_gate.decide(_scores(0.8, 0.8), _scores(0.7, 0.7), metric="macro_f1", dev_rows=100, mode="always")
    assert record["decision"] == "kept" and record["passes_gate"] is False and "augment='always'" in record["why"]


@pytest.mark.parametrize("gold, budget", [(10, 64), (96, 64), (640, 64), (5000, 500), (8544, 854), (20000, 1000)])
def test_the_default_budget_is_a_tenth_of_the_gold_rows_within_64_and_1000(gold, budget):
    config = CompressionConfig(model="m", dataset="d", measure_onnx=False)
    assert config.augment == "auto" and config.augment_budget is None and config.augment_epochs == 1
    assert augment_budget(config, gold) == budget
    assert augment_budget(CompressionConfig(model="m", dataset="d", measure_onnx=False, augment_budget=7), gold) == 7


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"augment": "sometimes"}, "`augment` must be one of"),
        ({"augment": None}, "`augment` must be one of"),
        ({"augment_budget": 0}, "`augment_budget` must be an integer >= 1.*augment='off'"),
        ({"augment_budget": -3}, "`augment_budget` must be an integer >= 1"),
        ({"augment_budget": 1.5}, "`augment_budget` must be an integer >= 1"),
        ({"augment_budget": True}, "`augment_budget` must be an integer >= 1"),
        ({"augment_epochs": 0}, "`augment_epochs` must be an integer >= 1"),
        ({"augment_epochs": 1.5}, "`augment_epochs` must be an integer >= 1"),
        ({"augment": "off", "augment_budget": 8}, "`augment_budget` given with augment='off'"),
        ({"augment": "off", "augment_epochs": 2}, "`augment_epochs` given with augment='off'"),
        ({"augment": "always", "text_pair_column": "other"}, "'always' cannot run.*`text_pair_column`"),
        ({"augment_budget": 8, "text_pair_column": "other"}, "not supported with `text_pair_column`"),
    ],
)
def test_bad_augmentation_settings_are_refused_naming_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, **overrides)


def test_augmentation_always_is_refused_for_embeddings_and_auto_is_not():
    pytest.importorskip("sentence_transformers")
    with pytest.raises(ValueError, match="'always' cannot run.*feature-extraction"):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, task="feature-extraction", augment="always")
    with pytest.raises(ValueError, match="`augment_budget` given, but"):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, task="feature-extraction", augment_budget=4)
    assert CompressionConfig(model="m", dataset="d", measure_onnx=False, task="feature-extraction").augment == "auto"
