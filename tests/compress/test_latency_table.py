"""
Issue 23, latency that follows the budget: the measured student/source latency ratio beside the analytic
multiply-add ratio (report, summary, card), and the per-machine latency table a latency budget reads from.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from hf_bort.cards import compressed_card, save_card
from hf_bort.compress import CompressionConfig
from hf_bort.compress.report import CompressionResult, speed_record
from hf_bort.measure import machine
from hf_bort.ose import OSESearch, SearchSpace
from hf_bort.ose import costs as costs_module
from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import bert_tokenizer

REPO = Path(__file__).resolve().parents[2]
REPORT = json.loads((REPO / "benchmarks" / "results" / "compress_rt_seed0.json").read_text())["report"]
NO_ORT = {"latency_engine": "pytorch", "measure_onnx": False}  # the transformers 5 venv has no onnxruntime
LATENCY = {
    "batch_size": 1,
    "sequence_length": 128,
    "threads": 2,
    "pytorch": {"source": {"p50_ms": 10.0}, "student": {"p50_ms": 4.0}},
    "onnxruntime_fp32": {"source": {"p50_ms": 8.0}, "student": {"p50_ms": 2.0}},
}


def test_speed_record_puts_the_measured_ratio_beside_the_analytic_one():
    speed = speed_record(LATENCY, source_multiply_adds=1000, student_multiply_adds=200)
    assert speed["analytic_speedup"] == pytest.approx(5.0)
    assert speed["analytic_multiply_adds_ratio"] == pytest.approx(0.2)
    assert speed["pytorch"] == pytest.approx(
        {"latency_ratio": 0.4, "measured_speedup": 2.5, "fraction_of_analytic": 0.5}
    )
    assert speed["onnxruntime_fp32"]["fraction_of_analytic"] == pytest.approx(0.8)
    assert speed_record({}, 1000, 200) == {} and speed_record({"skipped": "x"}, 1000, 200) == {}


def test_summary_and_card_show_measured_beside_analytic(tmp_path):
    report = copy.deepcopy(REPORT)
    report["speed"] = speed_record(LATENCY, 1000, 200)
    summary = CompressionResult(report, tmp_path).summary()
    assert (
        "PyTorch b1 L128: measured latency ratio ×0.400 (speed-up 2.50×) vs analytic multiply-add ratio ×0.200 "
        "(5.00×): 50 % of the analytic speed-up" in summary
    )
    assert "ONNX Runtime fp32 b1 L128: measured latency ratio ×0.250" in summary
    (tmp_path / "card").mkdir()
    save_card(compressed_card(report, "student"), tmp_path / "card")
    card = (tmp_path / "card" / "README.md").read_text()
    assert "speed-up over the source, PyTorch" in card
    assert "2.50× measured vs 5.00× from multiply-adds at 128 tokens (50 %)" in card


def test_compress_latency_budget_uses_the_machine_table_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path / "cache"))
    config = CompressionConfig(model="m", dataset="d", max_latency_ratio=0.5, **NO_ORT)
    assert config.search_config(tmp_path / "out", 10).latency_cache == str(tmp_path / "cache" / "latency.json")
    mine = CompressionConfig(
        model="m", dataset="d", max_latency_ratio=0.5, latency_cache=str(tmp_path / "t.json"), **NO_ORT
    )
    assert mine.search_config(tmp_path / "out", 10).latency_cache == str(tmp_path / "t.json")
    from hf_bort.compress.cli import parse

    assert (
        parse(
            ["m", "--dataset", "d", "--measure-onnx", "false", "--latency-cache", str(tmp_path / "t.json")]
        ).latency_cache
        == mine.latency_cache
    )
    with pytest.raises(ValueError, match="`latency_cache` must be a file path"):
        CompressionConfig(model="m", dataset="d", latency_cache=" ", **NO_ORT)


def _search(tmp_path, output: str, settings) -> OSESearch:
    torch.manual_seed(0)
    source = BertModel(BertConfig(**TINY_SHAPE)).eval()
    space = SearchSpace.from_source(source, num_layers=(1, 2), num_heads=(2, 4), hidden_sizes=(32,))
    return OSESearch(
        source,
        space,
        settings,
        tokenizer=bert_tokenizer(tmp_path / "tok"),
        text_dataset=[f"text number {i} about things" for i in range(16)],
        output_dir=tmp_path / output,
        batch_size=4,
        num_eval_batches=1,
        show_progress=False,
    )


def test_a_second_run_on_the_same_machine_times_no_shape_again(tmp_path, monkeypatch):
    """Fake timing source: run 1 times every shape once; run 2 (another output folder) none; another CPU misses."""
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path / "cache"))
    timed = []

    def fake_measure(config, batch_size, sequence_length, engine, repeats, warmup):
        timed.append(costs_module.LatencyCache.shape_key(config, batch_size, sequence_length, engine))
        return 1.0 + config.num_hidden_layers + sum(config.layer_intermediate_sizes) / 1000

    monkeypatch.setattr(costs_module, "_measure", fake_measure)
    config = CompressionConfig(model="m", dataset="d", max_latency_ratio=0.9, cost_sequence_length=16, **NO_ORT)
    settings = config.search_config(tmp_path / "run1", 16)
    first = _search(tmp_path, "run1", settings)
    kept, info = first.candidates_within_budget()
    shapes = len(timed)
    assert shapes == len(set(timed)) == len(first.space)  # every shape once (the source's is one of the space's)
    assert (tmp_path / "cache" / "latency.json").is_file()

    second = _search(tmp_path, "run2", config.search_config(tmp_path / "run2", 16))
    again, info2 = second.candidates_within_budget()
    assert len(timed) == shapes, "the second run re-timed shapes already in the machine's table"
    assert [c.key for c in again] == [c.key for c in kept] and info2["latencies"] == info["latencies"]

    # another CPU (a different fingerprint: model, flags, cores, threads or torch) misses the table
    monkeypatch.setattr(costs_module, "device_fingerprint", lambda: "Other CPU|flags=0|cores=2|threads=1|torch=x")
    third = _search(tmp_path, "run3", config.search_config(tmp_path / "run3", 16))
    third.candidates_within_budget()
    assert len(timed) == 2 * shapes


def test_the_machine_fingerprint_names_the_cpu_flags(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: sse avx2\n")
    monkeypatch.setattr(machine, "CPUINFO", str(info))
    monkeypatch.setattr(machine.cpu_model_name, "__defaults__", (str(info),))
    monkeypatch.setattr(machine.cpu_flags, "__defaults__", (str(info),))
    avx2 = machine.device_fingerprint()
    info.write_text("model name\t: Some CPU\nflags\t\t: sse avx2 avx512f avx512_vnni\n")
    vnni = machine.device_fingerprint()
    assert avx2.startswith("Some CPU|flags=") and avx2 != vnni
