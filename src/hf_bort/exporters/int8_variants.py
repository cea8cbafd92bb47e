"""How each int8 variant of an exported ONNX graph is built: optimum's dynamic quantizer, ONNX Runtime's static
(QDQ) quantizer over calibration texts, blockwise `MatMulNBits`, and the measured per-node sensitivity that
`selective-int8` and `progressive-int8` exclude nodes by (see [`hf_bort.exporters.quantize`])."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..measure import ort_session
from .int8_config import Int8Config, meets

logger = logging.getLogger(__name__)


class _TextReader:
    """ONNX Runtime `CalibrationDataReader` over batches of tokenized texts (numpy feeds)."""

    def __init__(self, batches: list[dict[str, Any]]):
        self._batches = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _quantization_config(target: str, is_static: bool, per_channel: bool, **kwargs: Any):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    return getattr(AutoQuantizationConfig, target)(is_static=is_static, per_channel=per_channel, **kwargs)


def quantize_dynamic(
    directory: Path,
    name: str,
    target: str,
    per_channel: bool,
    fused: bool,
    exclude: Sequence[str] = (),
    reduce_range: bool = False,
    source_name: str = "model.onnx",
) -> Path:
    """`dynamic-int8`: optimum's `ORTQuantizer` with dynamic quantization (see the module docstring) of
    `directory/source_name`, written as `directory/model_<name>.onnx`."""
    from optimum.onnxruntime import ORTQuantizer

    quantizer = ORTQuantizer.from_pretrained(directory, file_name=source_name)
    config = _quantization_config(
        target,
        is_static=False,
        per_channel=per_channel,
        operators_to_quantize=["MatMul", "Attention"] if fused else ["MatMul"],
        nodes_to_exclude=list(exclude),
    )
    config.reduce_range = config.reduce_range or reduce_range  # not every preset takes the argument
    quantizer.quantize(quantization_config=config, save_dir=directory, file_suffix=name)
    written, output = directory / f"{Path(source_name).stem}_{name}.onnx", directory / f"model_{name}.onnx"
    if written != output:
        os.replace(written, output)
    return output


def quantize_static(
    directory: Path,
    name: str,
    target: str,
    per_channel: bool,
    batches: list[dict[str, Any]],
    method: str,
    reduce_range: bool = False,
) -> Path:
    """`static-int8`: ONNX Runtime's `quantize_static` (QDQ) calibrated on the given batches."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    config = _quantization_config(target, is_static=True, per_channel=per_channel)
    output = directory / f"model_{name}.onnx"
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method != "minmax":  # histogram collectors stack every batch's tensors: all batches must have one shape
        batches = [
            {key: value[row : row + 1] for key, value in batch.items()}
            for batch in batches
            for row in range(batch["input_ids"].shape[0])
        ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # calibration prints progress; keep stdout for the CLI's JSON
        quantize_static(
            str(directory / "model.onnx"),
            str(output),
            _TextReader(batches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            reduce_range=config.reduce_range or reduce_range,
            activation_type=config.activations_dtype,
            weight_type=config.weights_dtype,
            calibrate_method=methods[method],
            extra_options={
                "ActivationSymmetric": config.activations_symmetric,
                "WeightSymmetric": config.weights_symmetric,
            },
        )
    logger.debug("quantize_static printed: %s", printed.getvalue().strip())
    return output


def quantize_blockwise(directory: Path, name: str, block_size: int) -> Path:
    """Every `MatMul` with a constant 2-D weight → ONNX Runtime's `MatMulNBits` (8 bits, symmetric, one scale per
    `block_size` input channels of each output column, `accuracy_level=4`: int8 products with the activations
    quantized per row and block at run time)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(directory / "model.onnx"))
    weights = {init.name: init for init in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        rows, cols = w.shape
        blocks = -(-rows // block_size)
        padded = np.zeros((cols, blocks * block_size), np.float32)
        padded[:, :rows] = w.T
        padded = padded.reshape(cols, blocks, block_size)
        scale = np.abs(padded).max(-1) / 127
        scale[scale == 0] = 1.0
        quantized = (np.clip(np.round(padded / scale[..., None]), -127, 127) + 128).astype(np.uint8)  # zero point 128
        prefix = f"{node.name or node.output[0]}_int8"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(quantized, f"{prefix}_B"),
                numpy_helper.from_array(scale.reshape(-1), f"{prefix}_scales"),
            ]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], f"{prefix}_B", f"{prefix}_scales"],
                list(node.output),
                name=node.name,
                domain="com.microsoft",
                K=rows,
                N=cols,
                bits=8,
                block_size=block_size,
                accuracy_level=4,
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    output = directory / f"model_{name}.onnx"
    onnx.save(model, str(output))
    return output


def node_sensitivity(onnx_path: str | os.PathLike, batches: list[dict[str, Any]], per_channel: bool = True):
    """Measured int8 sensitivity of every quantizable node (`MatMul` / `Attention` with a constant weight).

    Returns `{node name: relative error}`: the fp32 graph runs on `batches` with each such node's activation input
    exposed, and the node's product is recomputed with the activation quantized per tensor (asymmetric uint8, as the
    dynamic path does at run time) and the weight quantized symmetric int8 (per output channel with
    `per_channel`): ``|| Q(x) Q(W) - x W ||_F / || x W ||_F`` summed over batches.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    weights = {init.name: init for init in model.graph.initializer}
    nodes = [
        node
        for node in model.graph.node
        if node.op_type in ("MatMul", "Attention") and len(node.input) > 1 and node.input[1] in weights and node.name
    ]
    if not nodes:
        return {}
    existing = {output.name for output in model.graph.output}
    for name in dict.fromkeys(node.input[0] for node in nodes):
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort_session(model.SerializeToString())
    feed_names = {item.name for item in session.get_inputs()}
    activations = list(dict.fromkeys(node.input[0] for node in nodes))
    error = {node.name: 0.0 for node in nodes}
    norm = {node.name: 0.0 for node in nodes}
    for batch in batches:
        values = dict(
            zip(
                activations, session.run(activations, {k: v for k, v in batch.items() if k in feed_names}), strict=True
            )
        )
        for node in nodes:
            x = values[node.input[0]].astype(np.float64)
            w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
            x2 = x.reshape(-1, x.shape[-1])
            low, high = min(x2.min(), 0.0), max(x2.max(), 0.0)
            scale = (high - low) / 255 or 1.0
            zero = np.round(-low / scale)
            xq = (np.clip(np.round(x2 / scale) + zero, 0, 255) - zero) * scale
            wmax = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
            wscale = np.where(wmax > 0, wmax / 127, 1.0)
            wq = np.clip(np.round(w / wscale), -127, 127) * wscale
            reference = x2 @ w
            error[node.name] += float(((xq @ wq - reference) ** 2).sum())
            norm[node.name] += float((reference**2).sum())
    return {name: math.sqrt(error[name] / norm[name]) if norm[name] > 0 else 0.0 for name in error}


def progressive_cap(nodes: int, max_fraction: float) -> int:
    """The most nodes `progressive-int8` keeps fp32: `max_fraction` of `nodes` (at least one when there are any)."""
    return min(nodes, max(1, math.floor(max_fraction * nodes))) if nodes else 0


def progressive_exclusion(
    quantize: Any, measure: Any, ranked: Sequence[str], config: Int8Config
) -> tuple[Path, dict[str, float], list[str], list[dict[str, Any]]]:
    """Exclude the `ranked` nodes (most sensitive first) 1, 2, 4, ... at a time, up to
    `progressive_cap(len(ranked), config.progressive_max_fraction)`, and stop at the first count whose measured
    agreement meets `config`'s thresholds (else the cap's graph is kept, and fails).

    `quantize(exclude=[...])` writes a dynamic int8 graph and returns its path; `measure(path)` returns its agreement
    metrics. Returns (path, metrics, excluded nodes, steps): one step per count tried, with its agreement.
    """
    cap = progressive_cap(len(ranked), config.progressive_max_fraction)
    counts, count = [], 1
    while count < cap:
        counts.append(count)
        count *= 2
    counts.append(cap)
    steps: list[dict[str, Any]] = []
    for count in counts:  # never empty: the cap (0 without quantizable nodes: plain dynamic) is always tried
        excluded = list(ranked[:count])
        path = quantize(exclude=excluded)
        metrics = measure(path)
        passed = meets(metrics, config)[0]
        steps.append({"excluded": count, **metrics, "meets_thresholds": passed})
        logger.info("int8 progressive: %d node(s) kept fp32: %s", count, metrics)
        if passed:
            break
    return path, metrics, excluded, steps
