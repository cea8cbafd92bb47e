"""Measuring, in one place: wall-clock timing and percentiles ([`timing`]), ONNX Runtime sessions ([`ort`]), the
machine a number was taken on and its CPU flags ([`machine`]), engine names ([`engines`]) and random inputs
([`inputs`]).

Every latency hf_bort reports (the OSE latency cache, `hf-bort bench`, `compress`'s report, int8 variant timing) is
timed with these functions. Multiply-adds are not measured: they come from [`hf_bort.ose.costs.encoder_multiply_adds`]
only. This package imports nothing else of hf_bort, and torch / onnxruntime only when a function needs them.
"""

from __future__ import annotations

from .engines import BENCH_ENGINES, ORT_ENGINES, PYTORCH, REPORT_ENGINE_KEYS, SEARCH_ENGINES
from .inputs import random_inputs
from .machine import (
    bench_machine_info,
    cpu_flags,
    cpu_model_name,
    device_fingerprint,
    machine_info,
    measure_matmul_peak,
)
from .ort import ONNXRUNTIME_HINT, ort_session, run_session, session_feed
from .timing import latency_summary, percentile, time_calls, time_interleaved

__all__ = [
    "BENCH_ENGINES",
    "ONNXRUNTIME_HINT",
    "ORT_ENGINES",
    "PYTORCH",
    "REPORT_ENGINE_KEYS",
    "SEARCH_ENGINES",
    "bench_machine_info",
    "cpu_flags",
    "cpu_model_name",
    "device_fingerprint",
    "latency_summary",
    "machine_info",
    "measure_matmul_peak",
    "ort_session",
    "percentile",
    "random_inputs",
    "run_session",
    "session_feed",
    "time_calls",
    "time_interleaved",
]
