"""ONNX Runtime's transformer optimizer on an exported graph: fused attention, SkipLayerNormalization, BiasGelu and
EmbedLayerNormalization, validated against PyTorch before it replaces the plain graph."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agreement import max_abs_diff
from .validation import OnnxValidationError, ort_outputs

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from .onnx import OnnxExportResult

logger = logging.getLogger(__name__)

_ATTENTION_OPS = ("Attention", "MultiHeadAttention")


def encoder_depth(config: Any) -> int | None:
    """The encoder's number of layers, whatever the config calls it (None when it has no such field)."""
    for name in ("num_hidden_layers", "n_layers", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def optimize_graph(source: Path, target: Path) -> dict[str, int]:
    """Run ONNX Runtime's transformer optimizer on `source`, write the fused graph to `target`; return the counts.

    `num_heads=0, hidden_size=0`: heads and widths are read per layer from the graph (Bort's per-layer head counts,
    inner widths other than the hidden size). The raw 2-D attention mask is kept (`use_raw_attention_mask`): the
    `bert` default turns it into sequence lengths, which is wrong for left padding or masks with holes.
    `opt_level=0`: only the Python fusions, so the written graph does not depend on this machine's CPU.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    # The fusions log a warning per layer whose attention width differs from the hidden size (supported: the node
    # gets qkv_hidden_sizes); keep that noise out of the user's log while the optimizer runs.
    # Some fusions also print() their reasons for not matching: send that to the debug log, not to stdout (where
    # `hf-bort export` writes its JSON).
    noisy = logging.getLogger("fusion_attention")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            optimized = optimize_model(
                str(source), model_type="bert", num_heads=0, hidden_size=0, optimization_options=options, opt_level=0
            )
    finally:
        noisy.setLevel(level)
        if printed.getvalue().strip():
            logger.debug("ONNX Runtime's transformer optimizer printed: %s", printed.getvalue().strip())
    counts = {name: int(count) for name, count in optimized.get_fused_operator_statistics().items()}
    optimized.save_model_to_file(str(target))
    return counts


def add_shape_info(onnx_path: Path) -> None:
    """Annotate a fused graph with the types / shapes of its tensors, in place (ORT's symbolic shape inference knows
    the com.microsoft fused operators; ONNX's does not, and the quantizer needs the type of every MatMul input)."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    inferred = SymbolicShapeInference.infer_shapes(onnx.load(str(onnx_path)), auto_merge=True)
    onnx.save(inferred, str(onnx_path))


def optimize_into(
    result: OnnxExportResult,
    model: PreTrainedModel,
    task: str,
    inputs: dict[str, torch.Tensor],
    reference: dict[str, Any],
    fp32: dict[str, Any],
    mask: Any,
    onnx_path: Path,
    atol: float,
) -> dict[str, Any]:
    """Fuse `onnx_path` in place when the fused graph validates; update `result`; return the ORT outputs kept.

    An optimizer that cannot handle the graph (an exception) leaves the plain graph, with the reason in
    `result.extra["optimize_error"]`; a fused graph that does not match PyTorch within `atol` is an error.
    """
    fused_path = onnx_path.with_name("model_fused.onnx")
    try:
        counts = optimize_graph(onnx_path, fused_path)
    except Exception as error:  # noqa: BLE001 - the optimizer's pattern matching fails in many ways; keep the plain graph
        fused_path.unlink(missing_ok=True)
        result.extra["optimize_error"] = f"{type(error).__name__}: {error}"
        logger.warning("ONNX Runtime's transformer optimizer failed (%s); model.onnx is the plain graph.", error)
        return fp32
    fused = ort_outputs(fused_path, inputs, result.outputs)
    fused_diff = max_abs_diff(reference, fused, mask)
    if not fused_diff <= atol:
        fused_path.unlink(missing_ok=True)
        raise OnnxValidationError(
            f"The optimized (fused) ONNX graph of {model.config.model_type} ({task}) failed validation: max abs "
            f"difference {fused_diff:.3g} between ONNX Runtime and PyTorch exceeds atol={atol:g} (the plain export "
            f"differs by {result.max_abs_diff:.3g}). Pass optimize=False (--no-optimize) to write the plain graph.",
            fused_diff,
        )
    os.replace(fused_path, onnx_path)
    attention = sum(counts.get(name, 0) for name in _ATTENTION_OPS)
    result.optimized = True
    result.fused_operators = counts
    result.unoptimized_max_abs_diff = result.max_abs_diff
    result.max_abs_diff = fused_diff
    result.attention_fused = result.num_layers is not None and attention == result.num_layers
    if not result.attention_fused:
        logger.warning(
            "ONNX Runtime fused attention in %d of %s layers of this %s graph (fused operators: %s).",
            attention,
            result.num_layers,
            model.config.model_type,
            {name: count for name, count in counts.items() if count},
        )
    return fused
