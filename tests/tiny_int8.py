"""What the int8 tests share: the marker for tests that need the ONNX extra, and a tiny classifier with outliers."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from hf_bort import BortConfig, BortForSequenceClassification
from tiny_shapes import HETERO_SHAPE

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("optimum.onnxruntime") is None,
    reason="needs optimum-onnx and onnxruntime (not installed on this stack, e.g. transformers 5.x)",
)

OUTLIER_SHAPE = HETERO_SHAPE  # the outlier classifier's shape


def outlier_model(gain: float = 20.0):
    """A tiny classifier whose LayerNorm outputs carry one channel `gain` times larger than the rest (as the
    LayerNorm outputs of fine-tuned MiniLM do: what makes full dynamic int8 disagree with fp32)."""
    torch.manual_seed(0)
    model = BortForSequenceClassification(BortConfig(**OUTLIER_SHAPE)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight[3] = gain
                module.bias[3] = 0.0
    return model
