from __future__ import annotations

import argparse
import json

import pytest
import torch
from transformers import BertConfig

from hf_bort import BortConfig, BortModel
from hf_bort.exporters.bench import BenchConfig, multiply_adds


def test_multiply_adds_bert_base_matches_hand_count():
    config = BertConfig()  # H 768, 12 layers, 12 heads, FFN 3072
    L = 128
    per_layer = 4 * L * 768 * 768 + 2 * L * L * 768 + 2 * L * 768 * 3072
    assert multiply_adds(config, batch_size=2, seq_len=L) == 2 * 12 * per_layer


def test_multiply_adds_heterogeneous_bort():
    config = BortConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=[4, 2],
        attention_head_size=8,
        intermediate_size=[37, 16],
        embedding_size=16,
    )
    L = 10
    layer0 = 3 * L * 32 * 32 + 2 * 4 * L * L * 8 + L * 32 * 32 + 2 * L * 32 * 37
    layer1 = 3 * L * 32 * 16 + 2 * 2 * L * L * 8 + L * 16 * 32 + 2 * L * 32 * 16
    assert multiply_adds(config, 1, L) == layer0 + layer1 + L * 16 * 32


def test_bench_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_sizes"):
        BenchConfig(batch_sizes=[0])
    with pytest.raises(ValueError, match="engines"):
        BenchConfig(engines=["tensorrt"])
    with pytest.raises(ValueError, match="threads"):
        BenchConfig(threads=-1)


def test_bench_pytorch_only_without_optimum(tmp_path):
    from hf_bort.exporters.bench import run_benchmark

    torch.manual_seed(0)
    model = BortModel(
        BortConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    )
    config = BenchConfig(batch_sizes=[1], seq_lengths=[8], threads=1, warmup=1, iterations=3, engines=["pytorch"])
    result = run_benchmark({"tiny": model}, config, log=None)
    assert len(result.rows) == 1 and result.rows[0]["p50_ms"] > 0


def test_bench_tiny_models_json(tmp_path):
    pytest.importorskip("optimum.exporters.onnx")
    pytest.importorskip("onnxruntime")
    from hf_bort.exporters.bench import run_benchmark

    torch.manual_seed(0)
    big = BortModel(
        BortConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    )
    small = BortModel(
        BortConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=[2],
            attention_head_size=8,
            intermediate_size=[16],
            max_position_embeddings=64,
        )
    )
    config = BenchConfig(batch_sizes=[1, 2], seq_lengths=[8], threads=1, warmup=1, iterations=3)
    result = run_benchmark({"big": big, "small": small}, config, comparisons=[("small", "big")], log=None)
    paths = result.save(tmp_path, name="tiny")
    data = json.loads(open(paths["json"]).read())
    assert len(data["rows"]) == 2 * 2 * 3  # models x batch sizes x engines
    for row in data["rows"]:
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] and row["throughput"] > 0
        assert row["iterations"] == 3 and row["macs"] > 0 and row["gflops"] > 0
    assert data["machine"]["threads"] == 1 and data["machine"]["matmul_peak_gflops"] > 0
    assert data["models"]["big"]["max_abs_diff"] < 1e-3 and 0 <= data["models"]["big"]["argmax_agreement"] <= 1
    comparison = data["comparisons"][0]
    assert comparison["analytic_ratio"] == pytest.approx(
        multiply_adds(big.config, comparison["batch_size"], 8)
        / multiply_adds(small.config, comparison["batch_size"], 8)
    )
    assert {r["engine"] for r in data["comparisons"]} == {"pytorch", "ort-fp32", "ort-int8"}
    assert all("ort_fp32_over_pytorch" in r and "int8_over_fp32" in r for r in data["engine_ratios"])
    assert "| small | big |" in open(paths["markdown"]).read()
    assert all(r["fastest_fp32_engine"] in ("pytorch", "ort-fp32") for r in data["engine_ratios"])
    assert "| fastest fp32 |" in open(paths["markdown"]).read()
    assert data["machine"]["cpu_model"] and isinstance(data["machine"]["cpu_int8_flags"], list)


def test_bench_cli(tmp_path, capsys):
    pytest.importorskip("optimum.exporters.onnx")
    from hf_bort.exporters.cli import add_commands

    torch.manual_seed(0)
    BortModel(
        BortConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    ).save_pretrained(tmp_path / "ckpt")
    parser = argparse.ArgumentParser(prog="hf-bort")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "bench",
            str(tmp_path / "ckpt"),
            "--batch-sizes",
            "1",
            "--seq-lengths",
            "8",
            "--threads",
            "1",
            "--warmup",
            "1",
            "--iterations",
            "2",
            "--engines",
            "pytorch",
            "ort-fp32",
            "--output-dir",
            str(tmp_path / "res"),
        ]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "res" / "bench.json").read_text())
    assert {row["engine"] for row in data["rows"]} == {"pytorch", "ort-fp32"}
    args = parser.parse_args(["bench", "no-such-model", "--output-dir", str(tmp_path / "res2")])
    assert args.func(args) == 2
    assert "no-such-model" in capsys.readouterr().err
    args = parser.parse_args(["bench", "bort", "--compare", "nocolon"])
    assert args.func(args) == 2  # refused before any benchmarking
    assert "`compare` expects MODEL:REFERENCE pairs, got 'nocolon'" in capsys.readouterr().err


def test_the_matmul_peak_is_measured_once_and_reported_once(monkeypatch):
    """Issue 22 item 5: `bench --verbose` logged one peak and bench.md showed another (measured again at the end)."""
    import hf_bort.exporters.bench as bench

    figures = iter([95.2, 175.1])
    calls = []
    monkeypatch.setattr(bench, "measure_matmul_peak", lambda *args: calls.append(args) or next(figures))
    torch.manual_seed(0)
    model = BortModel(
        BortConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    )
    config = BenchConfig(batch_sizes=[1], seq_lengths=[8], threads=1, warmup=1, iterations=2, engines=["pytorch"])
    log: list[str] = []
    result = bench.run_benchmark({"tiny": model}, config, log=log.append)
    assert len(calls) == 1
    assert "matmul peak 95.2 GFLOP/s" in log[0] and "matmul peak 95.2 GFLOP/s" in result.to_markdown()
    row = result.rows[0]
    assert row["peak_fraction"] == pytest.approx(row["gflops"] / 95.2)
