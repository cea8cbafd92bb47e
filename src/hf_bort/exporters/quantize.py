"""int8 quantization of an exported (fused) ONNX graph, chosen by measured agreement with fp32.

Six variants, each applied to the `model.onnx` that [`export_onnx`] wrote (the fused graph by default):

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
- `smoothed-int8`: `dynamic-int8` of the graph with its activation outliers migrated into the weights
  (SmoothQuant's per-channel scale `s`, calibrated on the calibration texts with `Int8Config.smooth_alpha`), an
  explicit `Mul` by `1/s` in front of the products so that the post-LN residual path keeps the unscaled tensor:
  the fp32 function is unchanged ([`hf_bort.exporters.smooth`]).

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

import json
import logging
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from ..measure import latency_summary, ort_session, run_session, session_feed, time_calls
from .agreement import agreement_metrics as agreement
from .int8_config import (
    CALIBRATION_METHODS,
    INT8_VARIANTS,
    QUANTIZATION_TARGETS,
    QUANTIZE_CHOICES,
    Int8AgreementError,
    Int8Config,
    detect_quantization_target,
    meets,
)
from .int8_variants import (
    node_sensitivity,
    progressive_cap,
    progressive_exclusion,
    quantize_blockwise,
    quantize_dynamic,
    quantize_static,
)
from .smooth import smooth_graph

logger = logging.getLogger(__name__)

REPORT_NAME = "quantization_report.json"
QUANTIZED_NAME = "model_quantized.onnx"


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
        quantize_dynamic,
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
            paths[name] = quantize_static(
                directory,
                name,
                target,
                per_channel,
                calibration_batches,
                config.calibration_method,
                config.reduce_range,
            )
            entry["calibration_method"] = config.calibration_method
        elif name == "smoothed-int8":
            smoothed_fp32 = directory / "model_smoothed_fp32.onnx"
            entry["smoothing"] = smooth_graph(
                directory / "model.onnx", smoothed_fp32, calibration_batches, config.smooth_alpha, config.smooth_scope
            )
            try:
                paths[name] = dynamic(name, source_name=smoothed_fp32.name)
            finally:
                smoothed_fp32.unlink(missing_ok=True)
        elif name == "blockwise-int8":
            paths[name] = quantize_blockwise(directory, name, config.block_size)
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
    report["min_speedup"] = config.min_speedup if variant == "auto" else None
    report["kept_fp32"] = None  # auto only: "agreement" (no variant agrees) or "speed" (none agreeing is faster)
    if variant == "auto":
        passing = sorted((e for e in report["variants"] if e["meets_thresholds"]), key=lambda e: e["p50_ms"])
        fast = [e for e in passing if e["speedup_vs_fp32"] >= config.min_speedup]
        if fast:
            report["chosen"] = fast[0]["variant"]
            report["reason"] = (
                f"fastest of the variants meeting the thresholds ({', '.join(e['variant'] for e in passing)}), "
                f"{fast[0]['speedup_vs_fp32']:.2f}x fp32 (min_speedup {config.min_speedup:g})"
            )
        elif passing:
            report["kept_fp32"] = "speed"
            report["reason"] = (
                f"no agreeing int8 variant is at least {config.min_speedup:g}x as fast as fp32 on this CPU ("
                + ", ".join(f"{e['variant']} {e['speedup_vs_fp32']:.2f}x" for e in passing)
                + "): kept fp32 only"
            )
        else:
            report["kept_fp32"] = "agreement"
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
    if report["kept_fp32"] == "speed":  # agreeing but slower: fp32 is the better model here, not a failure
        logger.warning("quantize='auto': %s; no %s written.", report["reason"], QUANTIZED_NAME)
    elif chosen is None:
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
        if "smoothing" in entry:
            smoothing = entry["smoothing"]
            steps += f", {len(smoothing['tensors'])} tensor(s) smoothed"
            steps += f" (alpha {smoothing['alpha']:g}, {smoothing['scope']})"
        lines.append(f"  {entry['variant']}: {metrics}{speed}{steps}, {verdict} thresholds")
    if report["chosen"] is None:
        lines.append(f"  kept fp32 only: {report['reason']}")
    return "\n".join(lines)


__all__ = [
    "CALIBRATION_METHODS",
    "INT8_VARIANTS",
    "QUANTIZATION_TARGETS",
    "QUANTIZED_NAME",
    "QUANTIZE_CHOICES",
    "REPORT_NAME",
    "Int8AgreementError",
    "Int8Config",
    "agreement",
    "detect_quantization_target",
    "meets",
    "node_sensitivity",
    "progressive_cap",
    "progressive_exclusion",
    "quantize_exported",
    "report_summary",
    "run_onnx",
]
