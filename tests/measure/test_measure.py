"""hf_bort.measure: the one timing / ORT session / machine-info implementation, and the one multiply-add formula."""

from __future__ import annotations

import numpy as np
import pytest

from hf_bort import BortConfig
from hf_bort.measure import (
    BENCH_ENGINES,
    REPORT_ENGINE_KEYS,
    SEARCH_ENGINES,
    cpu_flags,
    latency_summary,
    percentile,
    random_inputs,
    time_calls,
    time_interleaved,
)


def test_time_calls_counts_warmup_and_iterations():
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=2, iterations=5)
    assert len(calls) == 7 and len(times) == 5 and all(t >= 0 for t in times)


def test_time_calls_stops_after_max_seconds_but_keeps_the_minimum():
    times = time_calls(lambda: None, warmup=0, iterations=10_000, max_seconds=0.0, min_iterations=3)
    assert len(times) == 3


def test_time_interleaved_times_every_runner_alike():
    order = []
    times = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, runs=4, rounds=2)
    assert {name: len(values) for name, values in times.items()} == {"a": 4, "b": 4}
    assert order[10:] == ["a", "a", "b", "b", "a", "a", "b", "b"]  # after 5 warm-up calls each


def test_percentile_is_numpys_linear_interpolation():
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4]
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))
    summary = latency_summary(values, median=True)
    assert summary["runs"] == 6 and summary["p50_ms"] == pytest.approx(1e3 * float(np.median(values)))


def test_cpu_flags_reads_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd\n")
    assert {"avx2", "avx512f"} <= cpu_flags(x86) and cpu_flags(arm) == {"fp", "asimd"}
    with pytest.raises(OSError):
        cpu_flags(tmp_path / "missing")


def test_random_inputs_are_seeded_and_respect_token_types():
    bert = BortConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    a, b = random_inputs(bert, 2, 7, seed=3), random_inputs(bert, 2, 7, seed=3)
    assert (a["input_ids"] == b["input_ids"]).all() and int(a["input_ids"].min()) >= 5
    assert ("token_type_ids" in a) == bool(bert.type_vocab_size)
    assert int(random_inputs(bert, 1, 30, seed=0, low=40)["input_ids"].min()) >= 40


def test_engine_names_are_defined_once():
    from hf_bort.exporters.bench import ENGINES
    from hf_bort.ose.costs import ENGINES as COST_ENGINES

    assert ENGINES == BENCH_ENGINES and COST_ENGINES == SEARCH_ENGINES
    assert set(REPORT_ENGINE_KEYS) <= set(BENCH_ENGINES)


@pytest.mark.parametrize(
    "extra",
    [
        {"gated_ffn": True},  # ModernBERT's GLU: three FFN matrices
        {"pos_att_type": ["c2p", "p2c"], "max_relative_positions": 16},  # DeBERTa's position terms
        {},
    ],
)
def test_bench_multiply_adds_are_the_cost_models(extra):
    """`hf-bort bench`'s multiply-adds are `ose.costs.encoder_multiply_adds` (they once left out gated-FFN and
    DeBERTa terms)."""
    from hf_bort.exporters.bench import multiply_adds
    from hf_bort.ose.costs import encoder_multiply_adds

    config = BortConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, **extra
    )
    assert multiply_adds(config, batch_size=3, seq_len=16) == 3 * encoder_multiply_adds(config, 16)


def test_ort_session_and_run_session(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from hf_bort.measure import ort_session, run_session

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "double.onnx"
    onnx.save(model, str(path))
    session = ort_session(path, threads=1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    out = run_session(session, {"x": np.array([1.0, 2.0], dtype=np.float32), "unused": np.zeros(1)})
    assert out["y"].tolist() == [2.0, 4.0]
    options = ort_session(path, threads=1).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # default: no spin-waiting
    entries = {"session.intra_op.allow_spinning": "1"}
    options = ort_session(path, threads=1, config_entries=entries).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_int8_cpu_flags_names_the_kernels_flags(tmp_path):
    from hf_bort.measure.machine import int8_cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu avx2 fma avx512f avx512_vnni amx_int8 sse4_2\n")
    assert int8_cpu_flags(cpuinfo) == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
    assert int8_cpu_flags(tmp_path / "missing") == []


def test_engine_ratios_name_the_fastest_engine():
    """Issue 23: where ORT fp32 loses to PyTorch, the report names PyTorch as the faster fp32 engine."""
    from hf_bort.exporters.bench import engine_ratios

    def row(engine, batch, ms):
        return {"model": "m", "engine": engine, "batch_size": batch, "seq_len": 128, "p50_ms": ms}

    rows = [row("pytorch", 1, 10.0), row("ort-fp32", 1, 8.0), row("ort-int8", 1, 9.0)]
    rows += [row("pytorch", 8, 50.0), row("ort-fp32", 8, 60.0), row("ort-int8", 8, 40.0)]
    first, second = engine_ratios(rows)
    assert (first["fastest_fp32_engine"], first["fastest_engine"]) == ("ort-fp32", "ort-fp32")
    assert (second["fastest_fp32_engine"], second["fastest_engine"]) == ("pytorch", "ort-int8")
    assert second["ort_fp32_over_pytorch"] == pytest.approx(50 / 60)
