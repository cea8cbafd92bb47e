"""ONNX export (optimum) and CPU benchmark for Bort and the encoders it is extracted from.

Importing this package needs neither optimum nor onnxruntime; the functions that need them import them lazily and
raise an ImportError naming `pip install "hf-bort[onnx]"` when they are missing.
"""

from __future__ import annotations

from .bench_compressed import CompressedBenchConfig, CompressedBenchResult, run_compressed_benchmark
from .onnx import (
    QUANTIZE_CHOICES,
    SUPPORTED_TASKS,
    VALIDATION_TEXTS,
    OnnxExportResult,
    OnnxValidationError,
    export_onnx,
    register_onnx,
    require_onnx,
    supported_model_types,
)
from .quantize import Int8AgreementError, Int8Config, detect_quantization_target

__all__ = [
    "QUANTIZE_CHOICES",
    "CompressedBenchConfig",
    "CompressedBenchResult",
    "Int8AgreementError",
    "Int8Config",
    "detect_quantization_target",
    "run_compressed_benchmark",
    "SUPPORTED_TASKS",
    "VALIDATION_TEXTS",
    "OnnxExportResult",
    "OnnxValidationError",
    "export_onnx",
    "register_onnx",
    "require_onnx",
    "supported_model_types",
]
