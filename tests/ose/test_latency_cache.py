"""A malformed or impossible `latency.json` is named in a warning and never trusted (issue 12, item 11)."""

from __future__ import annotations

import json
import math

import pytest
from transformers import BertConfig

from hf_bort.models.bort import bort_config_from
from hf_bort.ose import Candidate
from hf_bort.ose import costs as costs_module
from hf_bort.ose.costs import LatencyCache, candidate_config, device_fingerprint

BASE = bort_config_from(
    BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
)
CONFIG = candidate_config(Candidate(1, 2, 16, 8, 8), BASE)
KEY = LatencyCache.shape_key(CONFIG, 1, 8, "pytorch")


@pytest.fixture
def measured(monkeypatch):
    calls = []

    def fake(*args):
        calls.append(args)
        return 7.0

    monkeypatch.setattr(costs_module, "_measure", fake)
    return calls


@pytest.mark.parametrize("bad", [-5.0, 0.0, math.nan, math.inf, "3.0", True, None, [1.0]])
def test_impossible_latency_is_measured_again_with_a_warning_naming_file_and_entry(tmp_path, measured, caplog, bad):
    path = tmp_path / "latency.json"
    other = LatencyCache.shape_key(CONFIG, 2, 8, "pytorch")
    path.write_text(json.dumps({device_fingerprint(): {KEY: bad, other: 3.5}}))
    with caplog.at_level("WARNING", logger="hf_bort.ose.costs"):
        cache = LatencyCache(path)
    assert str(path) in caplog.text and KEY in caplog.text
    assert cache.get(KEY) is None and cache.get(other) == 3.5  # the good entry is kept
    assert cache.measure(CONFIG, sequence_length=8) == 7.0 and len(measured) == 1
    assert json.loads(path.read_text())[device_fingerprint()][KEY] == 7.0  # the bad entry replaced


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a string"', json.dumps({"device": [1.0]})])
def test_malformed_file_is_named_and_ignored(tmp_path, measured, caplog, text):
    path = tmp_path / "latency.json"
    path.write_text(text)
    with caplog.at_level("WARNING", logger="hf_bort.ose.costs"):
        cache = LatencyCache(path)
    assert str(path) in caplog.text
    assert cache.measure(CONFIG, sequence_length=8) == 7.0 and len(measured) == 1


def test_an_impossible_measurement_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(costs_module, "_measure", lambda *args: -1.0)
    cache = LatencyCache(tmp_path / "latency.json")
    with pytest.raises(RuntimeError, match="impossible latency"):
        cache.measure(CONFIG, sequence_length=8)
    assert not (tmp_path / "latency.json").exists()
