"""Outlier smoothing of an ONNX graph before dynamic int8 (`smoothed-int8`): SmoothQuant's per-channel migration of
activation outliers into the weights, placed so that it is function-preserving in a post-LayerNorm encoder.

Dynamic int8 quantizes each activation tensor with one scale; a few input channels ~15x larger than the rest (the
LayerNorm outputs of BERT-style encoders) waste most of its 256 levels. SmoothQuant divides channel j of the
activation by ``s_j = max|X_j|^alpha / max|W_j,:|^(1-alpha)`` and multiplies row j of the following weight by `s_j`,
so ``(X / s) (s W) = X W``. SmoothQuant folds the `1/s` into the preceding LayerNorm's weight and bias, but in a
post-LN encoder (BERT) that LayerNorm's output also feeds the residual connection of the next block, which would
see ``X / s``. Here the `1/s` is an explicit `Mul` node inserted between the activation and the nodes that read it
for a product (`MatMul` / fused `Attention` / `Gemm` with a constant weight): the residual keeps reading the
unscaled tensor, and the graph computes the same function in fp32 (up to rounding). The `Mul` costs one
element-wise pass over the activation, small beside the product.

`s` is calibrated from per-channel maxima of the activations on calibration batches ([`smooth_graph`]).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..measure import ort_session
from .int8_config import SMOOTH_SCOPES

_LAYERNORM_OPS = ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization", "SimplifiedLayerNorm")
_DATA_MOVEMENT_OPS = ("Gather", "Slice", "Squeeze", "Unsqueeze", "Reshape", "Transpose", "Identity")


def _from_layernorm(name: str, producers: dict[str, Any]) -> bool:
    """Whether tensor `name` is a LayerNorm output or a selection of one (the pooler's `Gather` of the first token)."""
    node = producers.get(name)
    while node is not None and node.op_type in _DATA_MOVEMENT_OPS:
        node = producers.get(node.input[0])
    return node is not None and node.op_type in _LAYERNORM_OPS


def _attribute(node, name: str, default: int = 0) -> int:
    return next((attr.i for attr in node.attribute if attr.name == name), default)


def _quantizable(model, weights: dict[str, Any]) -> list:
    """`MatMul` / fused `Attention` / `Gemm` (not transposing its input) nodes with a constant 2-D weight."""
    return [
        node
        for node in model.graph.node
        if node.op_type in ("MatMul", "Attention", "Gemm")
        and len(node.input) > 1
        and node.input[1] in weights
        and len(weights[node.input[1]].dims) == 2
        and not (node.op_type == "Gemm" and _attribute(node, "transA"))
    ]


def _rows(node, weight):
    """The weight as (input channels, outputs): a `Gemm` with `transB` stores it transposed."""
    return weight.T if node.op_type == "Gemm" and _attribute(node, "transB") else weight


def activation_channel_max(model, names: Sequence[str], batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-channel (last axis) maximum of `|x|` for each tensor in `names` of the ONNX `model` over `batches`."""
    import numpy as np
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {output.name for output in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort_session(model.SerializeToString())
    feed_names = {item.name for item in session.get_inputs()}
    maxima: dict[str, Any] = {}
    for batch in batches:
        values = session.run(list(names), {k: v for k, v in batch.items() if k in feed_names})
        for name, value in zip(names, values, strict=True):
            current = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            maxima[name] = np.maximum(maxima[name], current) if name in maxima else current
    return maxima


def smooth_graph(
    source: str | os.PathLike,
    target: str | os.PathLike,
    batches: list[dict[str, Any]],
    alpha: float = 0.75,
    scope: str = "all",
) -> dict[str, Any]:
    """Write to `target` the graph at `source` with every activation that a `MatMul` / `Attention` / `Gemm` with a
    constant 2-D weight reads (`scope="layernorm"`: only LayerNorm outputs, and selections of them such as the pooler's
    first token) divided per channel by `s` in an
    inserted `Mul`, and those weights' rows multiplied by `s` (see the module docstring). Returns a summary:
    smoothed tensors, and per tensor the ratio of its largest channel maximum to the median before and after."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"smooth_alpha must be in [0, 1]; got {alpha}.")
    if scope not in SMOOTH_SCOPES:
        raise ValueError(f"smooth_scope must be one of {', '.join(SMOOTH_SCOPES)}; got {scope!r}.")
    if not batches:
        raise ValueError("smoothing needs calibration batches (calibration texts); got none.")
    model = onnx.load(str(source))
    weights = {init.name: init for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in _quantizable(model, weights):
        if scope == "layernorm" and not _from_layernorm(node.input[0], producers):
            continue
        consumers.setdefault(node.input[0], []).append(node)
    weight_users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            weight_users[name] = weight_users.get(name, 0) + 1
    summary: dict[str, Any] = {"alpha": alpha, "scope": scope, "tensors": {}}
    if not consumers:
        onnx.save(model, str(target))
        return summary
    maxima = activation_channel_max(model, list(consumers), batches)
    value_info = {info.name: info for info in model.graph.value_info}
    new_nodes: dict[str, Any] = {}  # tensor name -> the Mul node inserted after its producer
    for name, nodes in consumers.items():
        x_max = np.maximum(maxima[name].astype(np.float64), 1e-5)
        w_max = np.full_like(x_max, 1e-5)
        for node in nodes:
            w = _rows(node, numpy_helper.to_array(weights[node.input[1]]).astype(np.float64))
            w_max = np.maximum(w_max, np.abs(w).max(axis=1))
        scale = np.clip(x_max**alpha / w_max ** (1.0 - alpha), 1e-5, 1e5)
        smoothed = f"{name}_smoothed"
        inverse = f"{name}_smooth_inv_scale"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        new_nodes[name] = helper.make_node("Mul", [name, inverse], [smoothed], name=f"{name}_smooth_mul")
        if name in value_info:
            info = onnx.ValueInfoProto.FromString(value_info[name].SerializeToString())
            info.name = smoothed
            model.graph.value_info.append(info)
        for node in nodes:
            weight_name = node.input[1]
            w = _rows(node, numpy_helper.to_array(weights[weight_name]).astype(np.float64)) * scale[:, None]
            w = _rows(node, w)  # back to the stored layout
            if weight_users[weight_name] > 1:  # shared weight: give this node its own scaled copy
                weight_name = f"{weight_name}_smoothed_{node.name or node.output[0]}"
                model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), weight_name))
                node.input[1] = weight_name
            else:
                weights[weight_name].CopyFrom(numpy_helper.from_array(w.astype(np.float32), weight_name))
            node.input[0] = smoothed
        scaled = x_max / scale
        summary["tensors"][name] = {
            "consumers": [node.name for node in nodes],
            "max_over_median_before": float(x_max.max() / np.median(x_max)),
            "max_over_median_after": float(scaled.max() / np.median(scaled)),
        }
    ordered = []
    graph_inputs = {item.name for item in model.graph.input}
    for name in graph_inputs & set(new_nodes):  # an input read directly: its Mul goes first
        ordered.append(new_nodes.pop(name))
    for node in model.graph.node:
        ordered.append(node)
        for output in node.output:
            if output in new_nodes:
                ordered.append(new_nodes.pop(output))
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    onnx.save(model, str(target))
    summary["smoothed_tensors"] = len(summary["tensors"])
    return summary


__all__ = ["SMOOTH_SCOPES", "activation_channel_max", "smooth_graph"]
