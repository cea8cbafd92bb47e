"""`smoothed-int8`: SmoothQuant's per-channel scales in an explicit `Mul` before the products (exporters.smooth)."""

from __future__ import annotations

import numpy as np
import pytest

from hf_bort.exporters.quantize import Int8Config
from tiny_int8 import needs_onnx, outlier_model


def _feed():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 99, size=(6, 12))
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _export(tmp_path):
    from hf_bort.exporters import export_onnx
    from hf_bort.exporters.optimize import add_shape_info

    result = export_onnx(outlier_model(), tmp_path / "out")
    assert result.optimized and result.fused_operators["SkipLayerNormalization"] == 4
    add_shape_info(tmp_path / "out" / "model.onnx")
    return tmp_path / "out" / "model.onnx"


@needs_onnx
@pytest.mark.parametrize(("scope", "tensors"), [("layernorm", 5), ("all", 10)])
def test_smoothing_keeps_the_fp32_function_and_the_residual_unscaled(tmp_path, scope, tensors):
    """Post-LN: a LayerNorm output feeds the next products AND the next residual. Folding 1/s into the LayerNorm
    would scale the residual too; the inserted Mul scales only what the products read, so fp32 is unchanged."""
    import onnx

    from hf_bort.exporters.quantize import run_onnx
    from hf_bort.exporters.smooth import smooth_graph

    source = _export(tmp_path)
    target = tmp_path / "out" / "smoothed.onnx"
    summary = smooth_graph(source, target, [_feed()], alpha=0.5, scope=scope)
    assert summary["smoothed_tensors"] == tensors
    reference = run_onnx(source, _feed(), ["logits"])["logits"]
    smoothed = run_onnx(target, _feed(), ["logits"])["logits"]
    assert np.abs(smoothed - reference).max() <= 1e-5 * max(1.0, np.abs(reference).max())
    graph = onnx.load(str(target)).graph
    muls = {node.input[0]: node.output[0] for node in graph.node if node.name.endswith("_smooth_mul")}
    assert set(muls) == set(summary["tensors"])
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for tensor, smoothed_name in muls.items():
        assert all(node.op_type in ("MatMul", "Attention", "Gemm") for node in readers[smoothed_name])
        if scope == "layernorm" and "pooler" not in tensor:  # the residual (next SkipLayerNorm) reads it unscaled
            assert "SkipLayerNormalization" in {node.op_type for node in readers[tensor]}
    outlier = max(summary["tensors"].values(), key=lambda item: item["max_over_median_before"])
    assert outlier["max_over_median_before"] > 10 * outlier["max_over_median_after"]  # alpha 0.5: about its root


@needs_onnx
def test_smoothed_int8_is_closer_to_fp32_than_plain_dynamic_on_outliers(tmp_path):
    from hf_bort.exporters import export_onnx

    errors = {}
    for variant in ("dynamic-int8", "smoothed-int8"):  # scope all: the pooler and classifier inputs too
        result = export_onnx(
            outlier_model(),
            tmp_path / variant,
            quantize=variant,
            int8=Int8Config(target="avx2", threads=1, smooth_alpha=0.5, smooth_scope="all"),
        )
        assert result.quantization["chosen"] == variant
        errors[variant] = result.int8_max_abs_diff
    smoothing = result.quantization["variants"][0]["smoothing"]
    assert smoothing["alpha"] == 0.5 and smoothing["scope"] == "all" and smoothing["smoothed_tensors"] == 10
    assert errors["smoothed-int8"] < 0.6 * errors["dynamic-int8"]
    assert not list((tmp_path / "smoothed-int8").glob("model_smoothed_fp32*.onnx"))  # the fp32 step is removed


@needs_onnx
def test_smoothing_refuses_bad_settings(tmp_path):
    from hf_bort.exporters.smooth import smooth_graph

    with pytest.raises(ValueError, match="smooth_alpha"):
        smooth_graph(tmp_path / "missing.onnx", tmp_path / "x.onnx", [_feed()], alpha=2.0)
    with pytest.raises(ValueError, match="calibration"):
        smooth_graph(tmp_path / "missing.onnx", tmp_path / "x.onnx", [], alpha=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(smooth_alpha=1.5), "smooth_alpha"),
        (dict(smooth_alpha=True), "smooth_alpha"),
        (dict(smooth_scope="ffn"), "smooth_scope"),
    ],
)
def test_smooth_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Int8Config(**kwargs)
