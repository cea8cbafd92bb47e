from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch

from hf_bort import BortConfig, BortForSequenceClassification, BortModel
from hf_bort.exporters.quantize import Int8Config, detect_quantization_target
from tiny_int8 import OUTLIER_SHAPE, needs_onnx
from tiny_tokenizers import bert_tokenizer

FAST = dict(target="avx2", threads=1, latency_runs=3, latency_seq_len=16, latency_max_seconds=1.0)
TEXTS = [f"sentence number {i} is about a film that was {'good' if i % 2 else 'bad'}" for i in range(12)]


def _model(cls=BortForSequenceClassification):
    torch.manual_seed(0)
    return cls(BortConfig(**OUTLIER_SHAPE)).eval()


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        ("fpu sse avx avx2 fma", "x86_64", "avx2"),
        ("avx avx2 avx512f avx512bw", "x86_64", "avx512"),
        ("avx2 avx512f avx512_vnni", "x86_64", "avx512_vnni"),
        ("fp asimd", "aarch64", "arm64"),
    ],
)
def test_detect_quantization_target(tmp_path, flags, machine, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert detect_quantization_target(cpuinfo, machine=machine) == expected


def test_undetectable_target_asks_for_one(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse sse2\n")
    with pytest.raises(ValueError, match="pass the quantization target explicitly"):
        detect_quantization_target(cpuinfo, machine="x86_64")
    with pytest.raises(ValueError, match="could not read the CPU flags"):
        detect_quantization_target(tmp_path / "missing", machine="x86_64")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(target="sse4"), "target must be"),
        (dict(variants=["dynamic-int8", "int4"]), "variants must be"),
        (dict(variants=[]), "variants must be"),
        (dict(min_label_agreement=1.5), "min_label_agreement"),
        (dict(selective_fraction=1.0), "selective_fraction"),
        (dict(progressive_max_fraction=0.0), "progressive_max_fraction"),
        (dict(block_size=24), "block_size"),
        (dict(block_size=8), "block_size"),
        (dict(calibration_method="mse"), "calibration_method"),
        (dict(latency_runs=0), "latency_runs"),
        (dict(threads=-1), "threads"),
    ],
)
def test_int8_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Int8Config(**kwargs)


def _nodes(path):
    import onnx

    return {node.name: node.op_type for node in onnx.load(str(path)).graph.node}


@needs_onnx
def test_auto_reports_every_variant_and_keeps_the_fastest_passing(tmp_path):
    from hf_bort.exporters import export_onnx

    tokenizer = bert_tokenizer(tmp_path / "tok")
    result = export_onnx(
        _model(),
        tmp_path / "out",
        quantize="auto",
        tokenizer=tokenizer,
        calibration_texts=TEXTS,
        int8=Int8Config(**FAST, min_speedup=1e-6),  # any agreeing variant qualifies: this test checks the choice
    )
    report = result.quantization
    assert report == json.loads((tmp_path / "out" / "quantization_report.json").read_text())
    assert report["target"] == "avx2" and report["target_source"] == "argument"
    assert report["calibration_examples"] == len(TEXTS) and report["calibration_source"] == "calibration_texts"
    assert [entry["variant"] for entry in report["variants"]] == [
        "dynamic-int8",
        "static-int8",
        "selective-int8",
        "progressive-int8",
        "blockwise-int8",
        "smoothed-int8",
    ]
    for entry in report["variants"]:
        assert 0 <= entry["label_agreement"] <= 1 and entry["p50_ms"] > 0 and entry["speedup_vs_fp32"] > 0
        assert "cosine_mean" not in entry  # a classifier is judged by its labels
    passing = [entry for entry in report["variants"] if entry["meets_thresholds"]]
    assert report["chosen"] == min(passing, key=lambda entry: entry["p50_ms"])["variant"]
    assert report["fp32"]["p50_ms"] > 0
    assert result.quantized_path == str(tmp_path / "out" / "model_quantized.onnx")
    # the chosen variant is model_quantized.onnx, the others are not kept
    assert sorted(p.name for p in (tmp_path / "out").glob("*.onnx")) == ["model.onnx", "model_quantized.onnx"]
    chosen_ops = set(_nodes(tmp_path / "out" / "model_quantized.onnx").values())
    if report["chosen"] == "static-int8":
        assert "QuantizeLinear" in chosen_ops and "DequantizeLinear" in chosen_ops
    elif report["chosen"] == "blockwise-int8":  # the fastest may be any agreeing variant: timing decides
        assert "MatMulNBits" in chosen_ops
    else:
        assert "MatMulInteger" in chosen_ops or "QAttention" in chosen_ops


@needs_onnx
def test_each_variant_is_what_it_says(tmp_path):
    from hf_bort.exporters import export_onnx

    result = export_onnx(
        _model(), tmp_path / "out", quantize="auto", int8=Int8Config(**FAST, keep_variants=True, best_effort=True)
    )
    report = result.quantization
    assert report["calibration_source"] == "the validation texts"  # said, not silent
    files = {entry["variant"]: tmp_path / "out" / entry["file"] for entry in report["variants"]}
    assert all(path.is_file() for path in files.values())
    dynamic = set(_nodes(files["dynamic-int8"]).values())
    assert {"QAttention", "MatMulInteger"} <= dynamic and "QuantizeLinear" not in dynamic
    static = set(_nodes(files["static-int8"]).values())
    assert {"QuantizeLinear", "DequantizeLinear", "Attention"} <= static  # fused attention stays fp32 in QDQ
    selective = report["variants"][2]
    excluded = selective["excluded_nodes"]
    assert len(excluded) == 2 and selective["quantized_nodes"] == 6  # ceil(0.25 x 8 quantizable nodes)
    nodes = _nodes(files["selective-int8"])
    for name in excluded:
        assert nodes[name] in ("MatMul", "Attention")  # kept fp32 under its own name
    assert "QAttention" in nodes.values() or "MatMulInteger" in nodes.values()


@needs_onnx
def test_sensitivity_finds_the_node_with_outliers():
    """A huge FFN activation in layer 1 (whose own contribution is zeroed) sets the int8 scale of the layer's output
    projection and wipes out the other activations: that node becomes the most sensitive by far."""
    import tempfile

    from hf_bort.exporters import export_onnx
    from hf_bort.exporters.quantize import node_sensitivity

    model = _model(BortModel)
    with torch.no_grad():
        model.encoder.layer[1].intermediate.dense.bias[3] = 200.0
        model.encoder.layer[1].output.dense.weight[:, 3] = 0.0
    with tempfile.TemporaryDirectory() as folder:
        result = export_onnx(model, Path(folder) / "out")
        ids = torch.randint(5, 99, (4, 10), generator=torch.Generator().manual_seed(0))
        batch = {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy()}
        sensitivity = node_sensitivity(result.onnx_path, [batch])
    ranked = sorted(sensitivity, key=sensitivity.get, reverse=True)
    assert len(ranked) == 8 and "layer.1/output/dense" in ranked[0]
    assert sensitivity[ranked[0]] > 5 * sensitivity[ranked[1]]


@needs_onnx
def test_target_sets_the_weight_type(tmp_path):
    import onnx

    from hf_bort.exporters import export_onnx

    def weight_types(target):
        folder = tmp_path / target
        export_onnx(_model(), folder, quantize="dynamic-int8", int8=Int8Config(target=target))
        model = onnx.load(str(folder / "model_quantized.onnx"))
        return {init.data_type for init in model.graph.initializer if init.name.endswith("_quantized")}

    assert weight_types("avx2") == {onnx.TensorProto.UINT8}  # optimum's avx2 preset: u8 weights
    assert weight_types("avx512_vnni") == {onnx.TensorProto.INT8}


@needs_onnx
def test_feature_extraction_is_judged_by_cosine_and_neighbours(tmp_path):
    from hf_bort.exporters import export_onnx

    result = export_onnx(
        _model(BortModel), tmp_path / "out", quantize="auto", int8=Int8Config(**FAST, variants=["dynamic-int8"])
    )
    (entry,) = result.quantization["variants"]
    assert 0.9 < entry["cosine_mean"] <= 1.0 + 1e-6 and 0 <= entry["neighbour_agreement"] <= 1
    assert "label_agreement" not in entry


def _low_agreement(monkeypatch):
    import hf_bort.exporters.quantize as quantize

    monkeypatch.setattr(quantize, "agreement", lambda reference, candidate, mask: {"label_agreement": 0.5})


@needs_onnx
def test_auto_without_a_passing_variant_fails_or_keeps_fp32(tmp_path, monkeypatch):
    from hf_bort.exporters import export_onnx
    from hf_bort.exporters.quantize import Int8AgreementError

    _low_agreement(monkeypatch)
    with pytest.raises(Int8AgreementError, match="no int8 variant meets the agreement thresholds") as info:
        export_onnx(_model(), tmp_path / "out", quantize="auto", int8=Int8Config(**FAST))
    assert [entry["variant"] for entry in info.value.report["variants"]] == [
        "dynamic-int8",
        "static-int8",
        "selective-int8",
        "progressive-int8",
        "blockwise-int8",
        "smoothed-int8",
    ]
    assert "label_agreement 0.5000 < 0.995" in str(info.value)
    progressive = info.value.report["variants"][3]  # never met: every count up to the cap was tried
    assert [step["excluded"] for step in progressive["steps"]] == [1, 2, 4] and progressive["max_excluded"] == 4
    assert not (tmp_path / "out").exists()  # a failed export leaves nothing

    result = export_onnx(_model(), tmp_path / "out", quantize="auto", int8=Int8Config(**FAST, best_effort=True))
    assert result.quantized_path is None and result.quantization["chosen"] is None
    assert "no int8 variant meets" in result.quantization["reason"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.onnx")) == ["model.onnx"]
    assert json.loads((tmp_path / "out" / "quantization_report.json").read_text())["chosen"] is None


def _parser():
    from hf_bort.exporters.cli import add_commands

    parser = argparse.ArgumentParser(prog="hf-bort")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


@needs_onnx
def test_cli_quantize_auto(tmp_path, capsys, monkeypatch):
    model = _model()
    model.config.pad_token_id = 0
    model.save_pretrained(tmp_path / "ckpt")
    bert_tokenizer(tmp_path / "tok").save_pretrained(tmp_path / "ckpt")
    (tmp_path / "val.txt").write_text("\n".join(TEXTS[:6]) + "\n\n")
    (tmp_path / "cal.txt").write_text("\n".join(TEXTS[6:]) + "\n")
    common = ["--task", "text-classification", "--quantize", "auto", "--int8-target", "avx512_vnni"]
    common += ["--int8-threads", "1", "--validation-texts", str(tmp_path / "val.txt")]
    common += ["--calibration-texts", str(tmp_path / "cal.txt"), "--int8-smooth-alpha", "0.7"]
    args = _parser().parse_args(["export", str(tmp_path / "ckpt"), str(tmp_path / "onnx"), *common])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)["quantization"]
    assert report["target"] == "avx512_vnni" and report["validation_examples"] == 6
    assert report["calibration_examples"] == 6 and len(report["variants"]) == 6
    assert (
        report["variants"][-1]["smoothing"]["alpha"] == 0.7 and report["variants"][-1]["smoothing"]["scope"] == "all"
    )
    assert "chosen: " in captured.err and "static-int8: label_agreement" in captured.err
    assert re.search(r"smoothed-int8: label_agreement .* tensor\(s\) smoothed \(alpha 0.7, all\)", captured.err)
    assert re.search(r"progressive-int8: label_agreement .* node\(s\) kept fp32 \(tried 1: [0-9.]+", captured.err)

    _low_agreement(monkeypatch)
    args = _parser().parse_args(["export", str(tmp_path / "ckpt"), str(tmp_path / "onnx2"), *common])
    assert args.func(args) == 1
    assert "int8 failed" in capsys.readouterr().err and not (tmp_path / "onnx2").exists()
    args = _parser().parse_args(
        ["export", str(tmp_path / "ckpt"), str(tmp_path / "onnx2"), *common, "--int8-best-effort"]
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["quantized_path"] is None and "kept fp32 only" in captured.err


def _fake_step(agreements):
    """quantize / measure stand-ins for progressive_exclusion: the agreement of each count, and the calls made."""
    calls = []

    def quantize(exclude):
        calls.append(list(exclude))
        return Path(f"model_{len(exclude)}.onnx")

    def measure(path):
        return {"label_agreement": agreements[int(path.stem.split("_")[1])]}

    return quantize, measure, calls


@pytest.mark.parametrize(
    ("nodes", "passes_from", "counts"),
    [
        (10, 4, [1, 2, 4]),  # stops at the first count that meets the threshold
        (10, 1, [1]),
        (10, 99, [1, 2, 4, 5]),  # never meets: every power of two below the cap, then the cap (half of 10)
        (8, 99, [1, 2, 4]),
        (1, 99, [1]),
    ],
)
def test_progressive_exclusion_stops_at_the_first_passing_count(nodes, passes_from, counts):
    from hf_bort.exporters.quantize import progressive_exclusion

    ranked = [f"node{i}" for i in range(nodes)]  # most sensitive first
    quantize, measure, calls = _fake_step({k: 0.999 if k >= passes_from else 0.9 for k in range(nodes + 1)})
    path, metrics, excluded, steps = progressive_exclusion(quantize, measure, ranked, Int8Config())
    assert calls == [ranked[:count] for count in counts]  # the most sensitive nodes, in order
    assert [step["excluded"] for step in steps] == counts
    assert [step["meets_thresholds"] for step in steps] == [count >= passes_from for count in counts]
    assert excluded == ranked[: counts[-1]] and path == Path(f"model_{counts[-1]}.onnx")
    assert metrics == {"label_agreement": steps[-1]["label_agreement"]}


@needs_onnx
def test_progressive_variant_excludes_the_most_sensitive_nodes_until_it_agrees(tmp_path, monkeypatch):
    import hf_bort.exporters.quantize as quantize
    from hf_bort.exporters import export_onnx

    calls = []

    def agreement(reference, candidate, mask):  # fails with one node kept fp32, agrees with two
        calls.append(1)
        return {"label_agreement": 0.9 if len(calls) == 1 else 1.0}

    monkeypatch.setattr(quantize, "agreement", agreement)
    batch_texts = TEXTS
    tokenizer = bert_tokenizer(tmp_path / "tok")
    result = export_onnx(
        _model(),
        tmp_path / "out",
        quantize="progressive-int8",
        tokenizer=tokenizer,
        calibration_texts=batch_texts,
        int8=Int8Config(target="avx2"),
    )
    (entry,) = result.quantization["variants"]
    assert entry["steps"] == [
        {"excluded": 1, "label_agreement": 0.9, "meets_thresholds": False},
        {"excluded": 2, "label_agreement": 1.0, "meets_thresholds": True},
    ]
    assert entry["label_agreement"] == 1.0 and entry["meets_thresholds"] and entry["max_excluded"] == 4
    assert entry["quantized_nodes"] == 6 and entry["file"] == "model_quantized.onnx"
    # the excluded nodes are the two with the largest measured sensitivity (same calibration batches)
    encoded = tokenizer(batch_texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    batches = [{k: encoded[k][i : i + 8] for k in ("input_ids", "attention_mask")} for i in range(0, len(TEXTS), 8)]
    sensitivity = quantize.node_sensitivity(tmp_path / "out" / "model.onnx", batches)
    top = sorted(sensitivity, key=sensitivity.get, reverse=True)[:2]
    assert list(entry["excluded_nodes"]) == top
    nodes = _nodes(tmp_path / "out" / "model_quantized.onnx")
    assert all(nodes[name] in ("MatMul", "Attention") for name in top)  # kept fp32
    assert "MatMulInteger" in nodes.values() or "QAttention" in nodes.values()


@needs_onnx
def test_attention_can_stay_fp32_and_reduce_range_is_reported(tmp_path):
    from hf_bort.exporters import export_onnx

    result = export_onnx(
        _model(),
        tmp_path / "out",
        quantize="dynamic-int8",
        int8=Int8Config(target="avx2", quantize_attention=False, reduce_range=True),
    )
    assert result.quantization["quantize_attention"] is False and result.quantization["reduce_range"] is True
    ops = set(_nodes(tmp_path / "out" / "model_quantized.onnx").values())
    assert "Attention" in ops and "QAttention" not in ops and "MatMulInteger" in ops

    def weight_span(folder):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(folder / "model_quantized.onnx"))
        values = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith("_quantized")]
        return max(int(v.max()) for v in values) - min(int(v.min()) for v in values)

    export_onnx(_model(), tmp_path / "full", quantize="dynamic-int8", int8=Int8Config(target="avx2"))
    assert weight_span(tmp_path / "out") <= 128 < weight_span(tmp_path / "full")  # 7-bit weights with reduce_range


@needs_onnx
def test_blockwise_variant_quantizes_every_matmul_per_block(tmp_path):
    import onnx

    from hf_bort.exporters import export_onnx

    result = export_onnx(
        _model(), tmp_path / "out", quantize="blockwise-int8", int8=Int8Config(target="avx2", block_size=16)
    )
    (entry,) = result.quantization["variants"]
    assert entry["block_size"] == 16 and entry["variant"] == "blockwise-int8"
    fp32 = onnx.load(str(tmp_path / "out" / "model.onnx"))
    weights = {init.name for init in fp32.graph.initializer}
    matmuls = {node.name for node in fp32.graph.node if node.op_type == "MatMul" and node.input[1] in weights}
    int8 = onnx.load(str(tmp_path / "out" / "model_quantized.onnx"))
    nodes = {node.name: node for node in int8.graph.node}
    assert matmuls and all(nodes[name].op_type == "MatMulNBits" for name in matmuls)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[sorted(matmuls)[0]].attribute}
    assert attributes["bits"] == 8 and attributes["block_size"] == 16 and attributes["accuracy_level"] == 4
    assert "MatMul" not in {node.op_type for node in int8.graph.node}  # no fp32 MatMul left, no weight kept twice
    assert result.int8_argmax_agreement_vs_fp32 == 1.0 and result.int8_max_abs_diff < 0.05


def _fake_latency(speedups: dict[str, float]):
    """A timing source for `quantize_exported`: fp32 takes 10 ms, each variant 10 / speedup ms (model_<variant>)."""

    def latency(path, feed, config):
        name = Path(path).stem.removeprefix("model_")
        return {"p50_ms": 10.0 if name == "model" else 10.0 / speedups[name], "p90_ms": 11.0, "runs": 3}

    return latency


@needs_onnx
@pytest.mark.parametrize(
    ("speedups", "min_speedup", "chosen"),
    [
        ({"dynamic-int8": 0.8, "blockwise-int8": 0.66}, 1.0, None),  # every agreeing variant slower: fp32 kept
        ({"dynamic-int8": 1.3, "blockwise-int8": 0.66}, 1.0, "dynamic-int8"),
        ({"dynamic-int8": 1.3, "blockwise-int8": 1.5}, 1.0, "blockwise-int8"),  # the fastest that agrees
        ({"dynamic-int8": 1.3, "blockwise-int8": 1.2}, 1.4, None),  # faster, but not by min_speedup
    ],
)
def test_auto_never_returns_a_variant_slower_than_fp32(tmp_path, monkeypatch, caplog, speedups, min_speedup, chosen):
    """Issue 23: `auto` kept blockwise-int8 at 0.66x fp32 on an AVX2 CPU. With a fake timing source, auto keeps fp32
    when no agreeing variant reaches `min_speedup` (a report entry and a warning, not an error)."""
    from hf_bort.exporters import export_onnx, quantize

    monkeypatch.setattr(quantize, "_latency_ms", _fake_latency(speedups))
    config = Int8Config(**FAST, variants=list(speedups), min_label_agreement=0.0, min_speedup=min_speedup)
    with caplog.at_level("WARNING"):
        result = export_onnx(_model(), tmp_path / "out", quantize="auto", calibration_texts=TEXTS, int8=config)
    report = result.quantization
    assert report["chosen"] == chosen and report["min_speedup"] == min_speedup
    assert {e["variant"]: round(e["speedup_vs_fp32"], 6) for e in report["variants"]} == speedups
    if chosen is None:
        assert report["kept_fp32"] == "speed" and "kept fp32 only" in report["reason"]
        assert result.quantized_path is None and not (tmp_path / "out" / "model_quantized.onnx").exists()
        assert any("kept fp32 only" in r.getMessage() for r in caplog.records)
        assert "kept fp32 only" in quantize.report_summary(report)
        assert "kept fp32 only" in (tmp_path / "out" / "README.md").read_text()  # the card says so
    else:
        assert report["kept_fp32"] is None and (tmp_path / "out" / "model_quantized.onnx").exists()


def test_min_speedup_must_be_positive():
    with pytest.raises(ValueError, match="min_speedup"):
        Int8Config(min_speedup=0)
    with pytest.raises(ValueError, match="min_speedup"):
        Int8Config(min_speedup="fast")
