"""What int8 variants exist and how one is chosen: [`Int8Config`] (target CPU, agreement thresholds, calibration and
latency settings), the CPU's quantization target, and the threshold check ([`meets`]).
See [`hf_bort.exporters.quantize`] for the variants themselves."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from ..measure import cpu_flags

QUANTIZATION_TARGETS: tuple[str, ...] = ("avx2", "avx512", "avx512_vnni", "arm64")
INT8_VARIANTS: tuple[str, ...] = (
    "dynamic-int8",
    "static-int8",
    "selective-int8",
    "progressive-int8",
    "blockwise-int8",
    "smoothed-int8",
)
QUANTIZE_CHOICES: tuple[str, ...] = ("auto", *INT8_VARIANTS)
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "percentile", "entropy")
SMOOTH_SCOPES: tuple[str, ...] = ("layernorm", "all")


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
    min_speedup: float = field(
        default=1.0,
        metadata={
            "help": "auto: least speed-up over the fp32 graph (p50 latency ratio, measured in the same run) an "
            "agreeing variant needs; when no agreeing variant is that fast, auto keeps fp32 only and says so (not an "
            "error)."
        },
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
    smooth_alpha: float = field(
        default=0.75,
        metadata={
            "help": "smoothed-int8: SmoothQuant's migration strength in [0, 1]; each smoothed activation channel j is "
            "divided by s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) (calibrated on the calibration texts) and the "
            "weight rows multiplied by s_j (0: no change of the activations; 1: all their range moves to the "
            "weights). Default 0.75: it met 99.5 % dev agreement on both RT models (benchmarks/int8_smoothing.py)."
        },
    )
    smooth_scope: str = field(
        default="all",
        metadata={
            "help": f"smoothed-int8: which activations are smoothed before dynamic int8, one of "
            f"{', '.join(SMOOTH_SCOPES)} (layernorm: the LayerNorm outputs, or the pooler's token of one, read by "
            "MatMul / Attention / Gemm; all: every activation a MatMul / Attention / Gemm with a constant weight "
            "reads)."
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
        if isinstance(self.smooth_alpha, bool) or not isinstance(self.smooth_alpha, (int, float)):
            raise ValueError(f"smooth_alpha must be a number in [0, 1]; got {self.smooth_alpha!r}.")
        if not 0.0 <= self.smooth_alpha <= 1.0:
            raise ValueError(f"smooth_alpha must be in [0, 1]; got {self.smooth_alpha}.")
        if self.smooth_scope not in SMOOTH_SCOPES:
            raise ValueError(f"smooth_scope must be one of {', '.join(SMOOTH_SCOPES)}; got {self.smooth_scope!r}.")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)}; got {self.calibration_method!r}."
            )
        for name in ("calibration_batch_size", "latency_batch_size", "latency_seq_len", "latency_runs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if not isinstance(self.block_size, int) or self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 16; got {self.block_size!r}.")
        if (
            isinstance(self.min_speedup, bool)
            or not isinstance(self.min_speedup, (int, float))
            or not (self.min_speedup > 0)
        ):
            raise ValueError(
                f"min_speedup must be a number > 0 (1.0: never slower than fp32); got {self.min_speedup!r}."
            )
        if not self.latency_max_seconds > 0:
            raise ValueError(f"latency_max_seconds must be > 0; got {self.latency_max_seconds}.")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: all cores); got {self.threads}.")

    def resolved_target(self) -> tuple[str, str]:
        """(target, where it came from)."""
        if self.target is not None:
            return self.target, "argument"
        return detect_quantization_target(), f"detected ({platform.machine()}, /proc/cpuinfo flags)"


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
