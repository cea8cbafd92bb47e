"""int8 quantization of an exported (fused) ONNX graph, chosen by measured agreement with fp32.

Five variants, each applied to the `model.onnx` that [`export_onnx`] wrote (the fused graph by default):

- `dynamic-int8`: optimum's `ORTQuantizer`, dynamic quantization of every `MatMul` and fused `Attention`
  (→ `MatMulInteger` / `QAttention`; `Int8Config.quantize_attention=False` leaves `Attention` fp32), weights per
  output channel by default, activations quantized per call with one scale per input tensor.
- `static-int8`: ONNX Runtime's `quantize_static` in QDQ format with activation ranges calibrated on the user's
  texts (a `CalibrationDataReader` over tokenized `calibration_texts`); ONNX Runtime has no QDQ form of the fused
  `Attention` operator, so the static variant quantizes the `MatMul`s (FFN, projections outside attention) and
  leaves the fused attention in fp32.
- `selective-int8`: `dynamic-int8` with the most sensitive nodes kept in fp32. Sensitivity is *measured* per node:
  the fp32 graph runs once on the calibration texts with every quantizable node's input exposed, and each node's
  relative output error under simulated int8 (its input quantized like the dynamic path: per-tensor asymmetric
  uint8; its weight symmetric per channel) is computed, ``|| Q(x) Q(W) - x W || / || x W ||``. The
  `selective_fraction` most sensitive nodes (at least one) are excluded. The FFN output projections (inputs after
  GELU, long-tailed) usually top the list.
- `progressive-int8`: `dynamic-int8` excluding the 1, 2, 4, ... most sensitive nodes (same measure), up to
  `progressive_max_fraction` of them (the cap is the last count tried), stopping at the first count whose agreement
  on the validation texts meets the thresholds ([`progressive_exclusion`]); every count tried is reported (`steps`).
- `blockwise-int8`: every `MatMul` with a constant weight becomes ONNX Runtime's `MatMulNBits` with 8 bits:
  symmetric int8 weights with a scale per `block_size` input channels of each output column and
  `accuracy_level=4`, int8 products whose activations are quantized per row and block at run time. The fused
  `Attention` stays fp32; `target` and `int8_per_channel` do not apply (one kernel for every CPU).

Measured on a fine-tuned MiniLM classifier and its compressed student (`benchmarks/int8_agreement.py`): the
disagreement of `dynamic-int8` comes from the per-tensor activation scale (LayerNorm outputs carry a few outlier
channels), not from the int8 weights, and it is spread over every layer; `blockwise-int8`'s per-row, per-block
activation scales kept the labels of both models (99.8 % of 500), while `progressive-int8` met the threshold on the
source with 8 of 24 nodes in fp32 and on the student with no count up to half of them (docs/exporters.md).
`Int8Config.reduce_range` (7-bit weights) applies to the dynamic and static variants.

`quantize="auto"` builds every variant, measures its agreement with the fp32 graph on the validation texts (label
agreement — the argmax of the logits, per example or per token — for task heads; mean cosine of mean-pooled
sentence embeddings and nearest-neighbour agreement for feature extraction) and its latency, and keeps the fastest
variant that meets the thresholds as `model_quantized.onnx`. Every variant is reported (`quantization_report.json`
in the output folder, `OnnxExportResult.quantization`). When none meets them, the export fails with
[`Int8AgreementError`] listing every variant, or — with `best_effort=True` — keeps only the fp32 graph and says so in
the report (`chosen: null`, `reason`) and in a warning.

The quantization target (`avx2`, `avx512`, `avx512_vnni`, `arm64`: optimum's `AutoQuantizationConfig` presets,
which set the weight / activation types) follows the CPU the export runs on ([`detect_quantization_target`]), or
`Int8Config.target` when given.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..measure import cpu_flags, latency_summary, ort_session, run_session, session_feed, time_calls

logger = logging.getLogger(__name__)

QUANTIZATION_TARGETS: tuple[str, ...] = ("avx2", "avx512", "avx512_vnni", "arm64")
INT8_VARIANTS: tuple[str, ...] = (
    "dynamic-int8",
    "static-int8",
    "selective-int8",
    "progressive-int8",
    "blockwise-int8",
)
QUANTIZE_CHOICES: tuple[str, ...] = ("auto", *INT8_VARIANTS)
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "percentile", "entropy")
REPORT_NAME = "quantization_report.json"
QUANTIZED_NAME = "model_quantized.onnx"


class Int8AgreementError(ValueError):
    """No int8 variant agrees with fp32 well enough (`quantize="auto"` without `best_effort`)."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


def detect_quantization_target(cpuinfo: str | os.PathLike = "/proc/cpuinfo", machine: str | None = None) -> str:
    """The int8 target of this CPU: `arm64` on ARM, else the best of `avx512_vnni` / `avx512` / `avx2` that
    `/proc/cpuinfo` lists. Raises a ValueError (asking for an explicit target) when it cannot tell."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine in ("arm64", "aarch64") or machine.startswith("armv8"):
        return "arm64"
    try:
        flags = cpu_flags(cpuinfo)
    except OSError as error:
        raise ValueError(
            f"could not read the CPU flags from {str(cpuinfo)!r} ({error}) on machine {machine!r}; pass the "
            f"quantization target explicitly (target= / --int8-target, one of {', '.join(QUANTIZATION_TARGETS)})."
        ) from error
    if {"avx512_vnni", "avx512vnni"} & flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    raise ValueError(
        f"this CPU ({machine}) lists none of avx2 / avx512f / avx512_vnni in {str(cpuinfo)!r}; pass the quantization "
        f"target explicitly (target= / --int8-target, one of {', '.join(QUANTIZATION_TARGETS)})."
    )


@dataclass
class Int8Config:
    """How int8 variants are built, compared with fp32 and chosen (`export_onnx(..., int8=Int8Config(...))`)."""

    target: str | None = field(
        default=None,
        metadata={"help": f"Quantization target, one of {', '.join(QUANTIZATION_TARGETS)}; None: this CPU's."},
    )
    variants: list[str] = field(
        default_factory=lambda: list(INT8_VARIANTS), metadata={"help": "Variants quantize='auto' compares."}
    )
    min_label_agreement: float = field(
        default=0.995, metadata={"help": "auto: least argmax (label) agreement with fp32, for task heads."}
    )
    min_cosine: float = field(
        default=0.995, metadata={"help": "auto: least mean cosine of sentence embeddings, feature extraction."}
    )
    min_neighbour_agreement: float = field(
        default=0.99, metadata={"help": "auto: least nearest-neighbour agreement, feature extraction."}
    )
    best_effort: bool = field(
        default=False,
        metadata={"help": "auto: when no variant meets the thresholds keep fp32 only (reported), instead of failing."},
    )
    selective_fraction: float = field(
        default=0.25, metadata={"help": "selective-int8: fraction of quantizable nodes (most sensitive) kept fp32."}
    )
    progressive_max_fraction: float = field(
        default=0.5,
        metadata={
            "help": "progressive-int8: most nodes (fraction of the quantizable ones, most sensitive first) kept fp32 "
            "before giving up; 1, 2, 4, ... nodes are tried up to this cap."
        },
    )
    quantize_attention: bool = field(
        default=True,
        metadata={
            "help": "Dynamic variants: quantize the fused Attention (QAttention, its QKV projection in int8); False "
            "keeps it fp32 and quantizes the MatMuls only."
        },
    )
    reduce_range: bool = field(
        default=False, metadata={"help": "Quantize weights to 7 bits (ONNX Runtime's reduce_range)."}
    )
    block_size: int = field(
        default=32,
        metadata={
            "help": "blockwise-int8: input channels per weight scale (a power of two >= 16); activations are "
            "quantized per row and block at run time."
        },
    )
    calibration_method: str = field(
        default="percentile", metadata={"help": f"static-int8 calibration: {', '.join(CALIBRATION_METHODS)}."}
    )
    calibration_batch_size: int = field(default=8, metadata={"help": "Texts per calibration batch."})
    latency_batch_size: int = field(default=1, metadata={"help": "auto: batch size of the latency measurement."})
    latency_seq_len: int = field(default=128, metadata={"help": "auto: sequence length of the latency measurement."})
    latency_runs: int = field(default=20, metadata={"help": "auto: timed runs per variant (at most)."})
    latency_max_seconds: float = field(default=5.0, metadata={"help": "auto: time budget per variant (>= 3 runs)."})
    threads: int = field(default=0, metadata={"help": "ONNX Runtime threads for the latency measurement (0: all)."})
    keep_variants: bool = field(
        default=False, metadata={"help": "Keep every evaluated variant as model_<variant>.onnx beside the chosen one."}
    )

    def __post_init__(self) -> None:
        if self.target is not None and self.target not in QUANTIZATION_TARGETS:
            raise ValueError(f"target must be None or one of {', '.join(QUANTIZATION_TARGETS)}; got {self.target!r}.")
        self.variants = list(self.variants)
        unknown = [v for v in self.variants if v not in INT8_VARIANTS]
        if unknown or not self.variants:
            raise ValueError(
                f"variants must be a non-empty subset of {', '.join(INT8_VARIANTS)}; got {self.variants}."
            )
        for name in ("min_label_agreement", "min_cosine", "min_neighbour_agreement"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {value}.")
        for name in ("selective_fraction", "progressive_max_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1); got {getattr(self, name)}.")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)}; got {self.calibration_method!r}."
            )
        for name in ("calibration_batch_size", "latency_batch_size", "latency_seq_len", "latency_runs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if not isinstance(self.block_size, int) or self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 16; got {self.block_size!r}.")
        if not self.latency_max_seconds > 0:
            raise ValueError(f"latency_max_seconds must be > 0; got {self.latency_max_seconds}.")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: all cores); got {self.threads}.")

    def resolved_target(self) -> tuple[str, str]:
        """(target, where it came from)."""
        if self.target is not None:
            return self.target, "argument"
        return detect_quantization_target(), f"detected ({platform.machine()}, /proc/cpuinfo flags)"


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


def _quantize_dynamic(
    directory: Path,
    name: str,
    target: str,
    per_channel: bool,
    fused: bool,
    exclude: Sequence[str] = (),
    reduce_range: bool = False,
) -> Path:
    from optimum.onnxruntime import ORTQuantizer

    quantizer = ORTQuantizer.from_pretrained(directory, file_name="model.onnx")
    config = _quantization_config(
        target,
        is_static=False,
        per_channel=per_channel,
        operators_to_quantize=["MatMul", "Attention"] if fused else ["MatMul"],
        nodes_to_exclude=list(exclude),
    )
    config.reduce_range = config.reduce_range or reduce_range  # not every preset takes the argument
    quantizer.quantize(quantization_config=config, save_dir=directory, file_suffix=name)
    return directory / f"model_{name}.onnx"


def _quantize_static(
    directory: Path,
    name: str,
    target: str,
    per_channel: bool,
    batches: list[dict[str, Any]],
    method: str,
    reduce_range: bool = False,
) -> Path:
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


def _quantize_blockwise(directory: Path, name: str, block_size: int) -> Path:
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
    import onnxruntime
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
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
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


def run_onnx(path: Path, inputs: dict[str, Any], names: list[str], threads: int = 0) -> dict[str, Any]:
    """The `names` outputs of the ONNX graph at `path` on numpy `inputs`, with `threads` threads (0: all)."""
    return run_session(ort_session(path, threads or (os.cpu_count() or 1)), inputs, names)


def _latency_ms(path: Path, feed: dict[str, Any], config: Int8Config) -> dict[str, float]:
    session = ort_session(path, config.threads or (os.cpu_count() or 1))
    feed = session_feed(session, feed)
    try:
        times = time_calls(partial(session.run, None, feed), 2, config.latency_runs, config.latency_max_seconds)
    finally:
        del session  # stop its thread pool before the next variant is timed
    return latency_summary(times)


def agreement(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> dict[str, float]:
    """Agreement of int8 outputs with fp32 ones: `label_agreement` for logits outputs; `cosine_mean`,
    `cosine_min` and `neighbour_agreement` for `last_hidden_state` (mean-pooled sentence embeddings)."""
    from .agreement import _pooled_cosine, argmax_agreement

    out: dict[str, float] = {}
    logits = {name: value for name, value in reference.items() if name not in ("last_hidden_state", "pooler_output")}
    if logits:
        out["label_agreement"] = argmax_agreement(logits, candidate, mask)
    if "last_hidden_state" in reference:
        hidden = {"last_hidden_state": reference["last_hidden_state"]}
        out["neighbour_agreement"] = argmax_agreement(hidden, candidate, mask)
        low, mean = _pooled_cosine(reference["last_hidden_state"], candidate["last_hidden_state"], mask)
        out.update(cosine_mean=mean, cosine_min=low)
    return out


def meets(metrics: dict[str, float], config: Int8Config) -> tuple[bool, list[str]]:
    """Whether `metrics` meet `config`'s thresholds, and the failures in words."""
    checks = [
        ("label_agreement", config.min_label_agreement),
        ("cosine_mean", config.min_cosine),
        ("neighbour_agreement", config.min_neighbour_agreement),
    ]
    failures = [
        f"{name} {metrics[name]:.4f} < {threshold}"
        for name, threshold in checks
        if name in metrics and not metrics[name] >= threshold
    ]
    return not failures, failures


def _latency_feed(inputs: dict[str, Any], config: Int8Config, vocab_size: int | None, max_len: int | None):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (config.latency_batch_size, min(config.latency_seq_len, max_len or config.latency_seq_len))
    high = vocab_size if vocab_size else int(inputs["input_ids"].max()) + 1
    ids = rng.integers(min(5, high - 1), high, size=shape, dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in inputs:
        feed["token_type_ids"] = np.zeros_like(ids)
    if inputs["input_ids"].ndim == 3:  # multiple choice: two choices
        feed = {key: np.stack([value, value], axis=1) for key, value in feed.items()}
    return feed


def quantize_exported(
    directory: str | os.PathLike,
    variant: str,
    *,
    validation_inputs: dict[str, Any],
    fp32_outputs: dict[str, Any],
    calibration_batches: list[dict[str, Any]],
    config: Int8Config | None = None,
    fused: bool = True,
    per_channel: bool = True,
    vocab_size: int | None = None,
    max_seq_len: int | None = None,
    calibration_source: str = "calibration_texts",
) -> dict[str, Any]:
    """Quantize `directory/model.onnx` (`variant` one of `QUANTIZE_CHOICES`), write `model_quantized.onnx` and
    `quantization_report.json`, and return the report (a dict, also written). See the module docstring.

    `validation_inputs` / `fp32_outputs` are numpy feeds and the fp32 graph's outputs on them;
    `calibration_batches` are numpy feeds for static calibration and node sensitivity; `max_seq_len` caps the
    latency measurement's sequence length (the model's position table).
    """
    if variant not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}; got {variant!r}.")
    config = config or Int8Config()
    directory = Path(directory)
    target, target_source = config.resolved_target()
    names = list(fp32_outputs)
    mask = validation_inputs["attention_mask"]
    variants = config.variants if variant == "auto" else [variant]
    timing = variant == "auto"
    feed = _latency_feed(validation_inputs, config, vocab_size, max_seq_len) if timing else None
    report: dict[str, Any] = {
        "requested": variant,
        "target": target,
        "target_source": target_source,
        "per_channel": per_channel,
        "fused_graph": fused,
        "thresholds": {
            "min_label_agreement": config.min_label_agreement,
            "min_cosine": config.min_cosine,
            "min_neighbour_agreement": config.min_neighbour_agreement,
        },
        "validation_examples": int(validation_inputs["input_ids"].shape[0]),
        "calibration_examples": int(sum(batch["input_ids"].shape[0] for batch in calibration_batches)),
        "calibration_source": calibration_source,
        "compared_with": "the fp32 ONNX graph (model.onnx) on the validation texts",
        "latency_shape": list(feed["input_ids"].shape) if timing else None,
        "threads": config.threads or (os.cpu_count() or 1),
        "fp32": {},
        "variants": [],
        "chosen": None,
        "reason": "",
    }
    if timing:
        report["fp32"] = _latency_ms(directory / "model.onnx", feed, config)
    paths: dict[str, Path] = {}
    report["quantize_attention"] = fused and config.quantize_attention
    report["reduce_range"] = config.reduce_range
    dynamic = partial(
        _quantize_dynamic,
        directory,
        target=target,
        per_channel=per_channel,
        fused=fused and config.quantize_attention,
        reduce_range=config.reduce_range,
    )

    def measure(path: Path) -> dict[str, float]:
        return agreement(fp32_outputs, run_onnx(path, validation_inputs, names), mask)

    sensitivity: dict[str, float] | None = None
    for name in variants:
        started = time.perf_counter()
        entry: dict[str, Any] = {"variant": name}
        metrics: dict[str, float] | None = None
        if name == "dynamic-int8":
            paths[name] = dynamic(name)
        elif name == "static-int8":
            paths[name] = _quantize_static(
                directory,
                name,
                target,
                per_channel,
                calibration_batches,
                config.calibration_method,
                config.reduce_range,
            )
            entry["calibration_method"] = config.calibration_method
        elif name == "blockwise-int8":
            paths[name] = _quantize_blockwise(directory, name, config.block_size)
            entry["block_size"] = config.block_size
        else:
            if sensitivity is None:
                sensitivity = node_sensitivity(directory / "model.onnx", calibration_batches, per_channel)
            ranked = sorted(sensitivity, key=sensitivity.get, reverse=True)
            if name == "selective-int8":
                excluded = ranked[: max(1, math.ceil(config.selective_fraction * len(ranked)))] if ranked else []
                paths[name] = dynamic(name, exclude=excluded)
            else:
                paths[name], metrics, excluded, entry["steps"] = progressive_exclusion(
                    partial(dynamic, name), measure, ranked, config
                )
                entry["max_excluded"] = progressive_cap(len(ranked), config.progressive_max_fraction)
            entry["excluded_nodes"] = {node: sensitivity[node] for node in excluded}
            entry["quantized_nodes"] = len(ranked) - len(excluded)
        entry["quantize_seconds"] = time.perf_counter() - started
        entry["file"] = paths[name].name
        entry.update(metrics if metrics is not None else measure(paths[name]))
        entry["meets_thresholds"], entry["failures"] = meets(entry, config)
        if timing:
            entry.update(_latency_ms(paths[name], feed, config))
            entry["speedup_vs_fp32"] = report["fp32"]["p50_ms"] / entry["p50_ms"]
        report["variants"].append(entry)
        logger.info("int8 %s: %s", name, {k: v for k, v in entry.items() if k not in ("excluded_nodes", "steps")})
    if variant == "auto":
        passing = sorted((e for e in report["variants"] if e["meets_thresholds"]), key=lambda e: e["p50_ms"])
        if passing:
            report["chosen"] = passing[0]["variant"]
            report["reason"] = (
                f"fastest of the variants meeting the thresholds ({', '.join(e['variant'] for e in passing)})"
            )
        else:
            report["reason"] = "no int8 variant meets the agreement thresholds: " + "; ".join(
                f"{e['variant']}: {', '.join(e['failures'])}" for e in report["variants"]
            )
    else:
        report["chosen"] = variant
        report["reason"] = "requested"
    chosen = report["chosen"]
    if chosen is not None:
        os.replace(paths.pop(chosen), directory / QUANTIZED_NAME)
        for entry in report["variants"]:
            if entry["variant"] == chosen:
                entry["file"] = QUANTIZED_NAME
    for name, path in paths.items():
        if not config.keep_variants:
            path.unlink(missing_ok=True)
            for entry in report["variants"]:
                if entry["variant"] == name:
                    entry["file"] = None
    (directory / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    if chosen is None:
        message = (
            f"quantize='auto': {report['reason']} (on {report['validation_examples']} validation examples, target "
            f"{target}). "
        )
        if not config.best_effort:
            raise Int8AgreementError(
                message + "Pass best_effort=True (--int8-best-effort) to keep the fp32 model only, lower the "
                "thresholds, or quantize with an explicit variant.",
                report,
            )
        logger.warning("%sKeeping fp32 only (best_effort): no %s written.", message, QUANTIZED_NAME)
    return report


_METRICS = ("label_agreement", "cosine_mean", "neighbour_agreement")


def report_summary(report: dict[str, Any]) -> str:
    """One line per variant: agreement, latency, chosen or not."""
    lines = [f"int8 target {report['target']} ({report['target_source']}); chosen: {report['chosen'] or 'none'}"]
    if report["fp32"]:
        lines.append(f"  fp32: p50 {report['fp32']['p50_ms']:.2f} ms")
    for entry in report["variants"]:
        metrics = ", ".join(f"{key} {entry[key]:.4f}" for key in _METRICS if key in entry)
        speed = f", p50 {entry['p50_ms']:.2f} ms ({entry['speedup_vs_fp32']:.2f}x fp32)" if "p50_ms" in entry else ""
        verdict = "meets" if entry["meets_thresholds"] else "fails"
        steps = ""
        if "steps" in entry:
            tried = ", ".join(
                f"{step['excluded']}: " + "/".join(f"{step[k]:.4f}" for k in _METRICS if k in step)
                for step in entry["steps"]
            )
            steps = f", {len(entry['excluded_nodes'])} node(s) kept fp32 (tried {tried})"
        lines.append(f"  {entry['variant']}: {metrics}{speed}{steps}, {verdict} thresholds")
    if report["chosen"] is None:
        lines.append(f"  kept fp32 only: {report['reason']}")
    return "\n".join(lines)
