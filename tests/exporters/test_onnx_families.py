"""Bort models converted from DistilBERT, MPNet, DeBERTa-v3 and ModernBERT export to ONNX and validate."""

from __future__ import annotations

import pytest

from hf_bort import convert_to_bort
from tiny_families import make_source

pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("onnxruntime")

from hf_bort.exporters import export_onnx


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert", "modernbert-biases-mean"])
@pytest.mark.parametrize(
    ("head", "task"), [("Model", "feature-extraction"), ("ForSequenceClassification", "text-classification")]
)
def test_converted_families_export_and_validate(tmp_path, family, head, task):
    bort = convert_to_bort(make_source(family, head)).eval()
    result = export_onnx(bort, tmp_path / "out", task=task)
    assert result.model_type == "bort" and result.inputs == ["input_ids", "attention_mask"]
    assert result.max_abs_diff < 1e-4
    # DistilBERT's graph is BERT's and fuses; MPNet's relative bias (added to the scores) keeps attention unfused.
    assert result.attention_fused is (family == "distilbert")
    if not family.startswith("modernbert"):  # pre-LayerNorm: the residual adds come after the norms
        assert result.fused_operators["SkipLayerNormalization"] >= 4
