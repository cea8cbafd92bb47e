from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ElectraConfig

from hf_bort import BortConfig, BortModel, bort_config_from
from hf_bort.ose import Candidate, LatencyCache, candidate_config, candidate_costs, encoder_multiply_adds
from hf_bort.ose import costs as costs_module

BASE = BortConfig(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    add_pooling_layer=False,
)


@pytest.mark.parametrize(
    "candidate", [Candidate(2, 4, 32, 37, 8), Candidate(1, 2, 24, 16, 8), Candidate(3, 3, 16, 5, 4)]
)
def test_costs_equal_the_built_model(candidate):
    costs = candidate_costs(candidate, BASE, sequence_length=16)
    model = BortModel(candidate_config(candidate, BASE)).eval()
    assert costs.params == sum(p.numel() for p in model.parameters())
    assert costs.encoder_params == sum(p.numel() for p in model.encoder.parameters())
    ids = torch.randint(3, 99, (1, 16))
    with FlopCounterMode(display=False) as counter:  # explicit attention so that the counter sees its matmuls
        model(ids, output_attentions=True)
    assert costs.multiply_adds == counter.get_total_flops() // 2


def test_multiply_adds_of_heterogeneous_and_projected_configs_match_flop_counter():
    electra = bort_config_from(
        ElectraConfig(
            vocab_size=99,
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
        )
    )
    config = candidate_config(
        Candidate(2, 2, 32, 10, 8), electra, num_attention_heads=[3, 1], intermediate_size=[4, 9]
    )
    model = BortModel(config).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(3, 99, (1, 12)), output_attentions=True)
    pooler = config.hidden_size**2 if config.add_pooling_layer else 0
    assert encoder_multiply_adds(config, 12) == counter.get_total_flops() // 2 - pooler


def test_latency_is_measured_once_per_shape_and_cached_on_disk(tmp_path, monkeypatch):
    calls = []
    real = costs_module._measure

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(costs_module, "_measure", counting)
    cache = LatencyCache(tmp_path / "latency.json", repeats=2, warmup=0)
    config = candidate_config(Candidate(1, 2, 16, 8, 8), BASE)
    first = cache.measure(config, sequence_length=8)
    assert first > 0 and cache.measure(config, sequence_length=8) == first
    assert LatencyCache(tmp_path / "latency.json").measure(config, sequence_length=8) == first
    assert len(calls) == 1
    cache.measure(config, sequence_length=8, batch_size=2)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="`engine` must be one of"):
        cache.measure(config, engine="tensorrt")


def test_onnxruntime_latency(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cache = LatencyCache(tmp_path / "latency.json", repeats=2, warmup=1)
    config = candidate_config(Candidate(1, 2, 16, 8, 8), BASE)
    assert cache.measure(config, sequence_length=8, engine="onnxruntime") > 0


def test_bad_sequence_length():
    with pytest.raises(ValueError, match="`sequence_length`"):
        encoder_multiply_adds(BASE, 0)
