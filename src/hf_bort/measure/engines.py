"""The engine names each public surface accepts or reports, defined once, with how they map onto each other.

The names differ per surface for compatibility (they are CLI choices and report keys users rely on); they all
name one of two runtimes, PyTorch eager or ONNX Runtime on CPU (fp32, or an int8 variant).
"""

from __future__ import annotations

PYTORCH = "pytorch"
# `OSESearch(latency_engine=...)`, `LatencyCache.measure(engine=...)`, `--search-latency-engine`.
SEARCH_ENGINES: tuple[str, ...] = (PYTORCH, "onnxruntime")
# `hf-bort bench --engines`, `BenchConfig.engines`, the `engine` column of bench rows.
BENCH_ENGINES: tuple[str, ...] = (PYTORCH, "ort-fp32", "ort-int8")
# The bench engines that run an ONNX file in ONNX Runtime.
ORT_ENGINES: tuple[str, ...] = ("ort-fp32", "ort-int8")
# Bench engine -> the key `compress`'s report uses for that runtime (`latency.pytorch`, `latency.onnxruntime_fp32`).
REPORT_ENGINE_KEYS: dict[str, str] = {PYTORCH: "pytorch", "ort-fp32": "onnxruntime_fp32"}
