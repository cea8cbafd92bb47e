"""Benchmark a compressed classifier against its source: speed of three engines next to their test accuracy.

[`run_compressed_benchmark`] takes the output of `hf-bort compress` (or any fine-tuned student sequence
classifier) and its source classifier, and for both models:

1. exports ONNX fp32 (fused, validated against PyTorch by [`export_onnx`]) and int8 (`quantize="auto"` by default:
   calibrated on training texts, variants compared with fp32 on the dev texts, the fastest variant that meets the
   agreement thresholds; when none does, the variant with the highest agreement is still timed and flagged);
2. measures each engine's **accuracy** (PyTorch eager, ORT fp32, ORT int8) on the labelled test set, and its label
   agreement with PyTorch;
3. times each engine alone (threads pinned, warm-up, p50/p90/p99) at every batch size × sequence length, reusing
   the timing of [`run_benchmark`];
4. reports ORT/PyTorch and int8/fp32 ratios, and the student's measured speedup over its source per engine and
   shape next to the analytic multiply-add ratio, all measured in the same run;
5. draws latency against accuracy (one panel per shape).

The labelled data: `dataset=None` is the packaged Rotten Tomatoes split (`hf_bort.assets.load_rotten_tomatoes`)
with the seed of the compress run (read from `compression_report.json`; the data fingerprint is compared with the
run's, so a test split that overlaps the student's training data does not go unnoticed); otherwise anything
`compress` accepts (a Hub name, a saved `DatasetDict`, CSV / JSON files), loaded the same way.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from ..measure import bench_machine_info, measure_matmul_peak, ort_session, random_inputs
from .bench import (
    ENGINES,
    BenchConfig,
    BenchResult,
    engine_ratios,
    multiply_adds,
    speedup_comparisons,
    time_engine,
    timing_row,
)
from .quantize import QUANTIZE_CHOICES, Int8Config

logger = logging.getLogger(__name__)

REPORT_NAME = "compression_report.json"


@dataclass
class CompressedBenchConfig(BenchConfig):
    """Options of [`run_compressed_benchmark`]: [`BenchConfig`]'s timing options plus data and int8 options."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32], metadata={"help": "Batch sizes to time."})
    seq_lengths: list[int] = field(default_factory=lambda: [64, 128], metadata={"help": "Sequence lengths to time."})
    dataset: Any = field(
        default=None,
        metadata={"help": "Labelled data (Hub name, saved DatasetDict, files); None: the packaged Rotten Tomatoes."},
    )
    rt_seed: int | None = field(
        default=None, metadata={"help": "Packaged RT split seed; None: the compress run's seed (else 0)."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column."})
    label_column: str = field(default="label", metadata={"help": "Label column."})
    test_split: str = field(default="test", metadata={"help": "Split the accuracy is measured on."})
    validation_split: str = field(default="validation", metadata={"help": "Split int8 agreement is checked on."})
    train_split: str = field(default="train", metadata={"help": "Split int8 calibration texts come from."})
    max_eval_rows: int | None = field(default=None, metadata={"help": "Cap on test rows (None: the whole split)."})
    validation_rows: int = field(default=500, metadata={"help": "Dev rows for the int8 agreement check."})
    calibration_rows: int = field(default=128, metadata={"help": "Training rows for int8 calibration."})
    eval_batch_size: int = field(default=32, metadata={"help": "Batch size of the accuracy runs."})
    max_length: int | None = field(
        default=None, metadata={"help": "Tokenizer truncation for accuracy; None: the compress run's (else 128)."}
    )
    int8: str = field(default="auto", metadata={"help": f"int8 variant: {', '.join(QUANTIZE_CHOICES)}."})
    int8_target: str | None = field(default=None, metadata={"help": "int8 target CPU (None: this one's)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.int8 not in QUANTIZE_CHOICES:
            raise ValueError(f"int8 must be one of {', '.join(QUANTIZE_CHOICES)}; got {self.int8!r}.")
        Int8Config(target=self.int8_target)  # validates the target
        for name in ("validation_rows", "calibration_rows", "eval_batch_size"):
            if getattr(self, name) < (1 if name == "eval_batch_size" else 3):
                raise ValueError(f"{name} must be >= 3 (eval_batch_size >= 1); got {getattr(self, name)}.")
        for name in ("max_eval_rows", "max_length", "rt_seed"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if name == "rt_seed" else 1)):
                raise ValueError(f"{name} must be None or a positive integer; got {value!r}.")


@dataclass
class CompressedBenchResult(BenchResult):
    """[`BenchResult`] plus each engine's test accuracy and the data it was measured on."""

    accuracy: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = [
            f"Test set: {self.data.get('test_rows')} rows ({self.data.get('source')}).",
            "",
            "| model | engine | test accuracy | agreement with PyTorch | int8 variant |",
            "|---|---|---:|---:|---|",
        ]
        for item in self.accuracy:
            lines.append(
                f"| {item['model']} | {item['engine']} | {100 * item['accuracy']:.2f}% "
                f"| {100 * item['agreement_with_pytorch']:.2f}% | {item.get('int8_variant') or '-'} |"
            )
        return "\n".join(lines) + "\n\n" + super().to_markdown()

    default_name: ClassVar[str] = "bench_compressed"

    def plot(self, path: str | os.PathLike) -> Path | None:
        """Latency against accuracy ([`plot_latency_accuracy`]); `save` writes it as `<name>.png`."""
        return plot_latency_accuracy(self, path)


def plot_latency_accuracy(result: CompressedBenchResult, path: str | os.PathLike) -> Path | None:
    """One panel per (batch, length): p50 latency (log x) against test accuracy, a marker per model and engine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    shapes = sorted({(row["batch_size"], row["seq_len"]) for row in result.rows})
    accuracy = {(item["model"], item["engine"]): item["accuracy"] for item in result.accuracy}
    columns = min(3, len(shapes))
    rows = -(-len(shapes) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    markers = {"pytorch": "o", "ort-fp32": "s", "ort-int8": "^"}
    colours = {model: f"C{i}" for i, model in enumerate(dict.fromkeys(row["model"] for row in result.rows))}
    for axis, (batch, seq) in zip(axes.flat, shapes, strict=False):
        for row in result.rows:
            if (row["batch_size"], row["seq_len"]) != (batch, seq) or (row["model"], row["engine"]) not in accuracy:
                continue
            axis.scatter(
                row["p50_ms"],
                100 * accuracy[(row["model"], row["engine"])],
                marker=markers[row["engine"]],
                color=colours[row["model"]],
                s=60,
                label=f"{row['model']} {row['engine']}",
            )
        axis.set_xscale("log")
        axis.set_xlabel("p50 latency (ms, log)")
        axis.set_ylabel("test accuracy (%)")
        axis.set_title(f"batch {batch}, length {seq}, {result.config['threads']} threads")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(shapes) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def resolve_compressed(
    student: str | os.PathLike, source: str | os.PathLike | None = None
) -> tuple[Path, Path, dict[str, Any] | None]:
    """(student folder, source folder, compress report or None) from a student classifier folder or the output
    folder of `hf-bort compress` (its `student/`, and the source its report names when `source` is None)."""
    student = Path(student)
    report = None
    for folder in (student, student.parent):
        if (folder / REPORT_NAME).is_file():
            report = json.loads((folder / REPORT_NAME).read_text())
            break
    if not (student / "config.json").is_file() and (student / "student" / "config.json").is_file():
        student = student / "student"
    if not (student / "config.json").is_file():
        raise ValueError(
            f"student={str(student)!r} is neither a classifier folder (config.json) nor the output folder of "
            "`hf-bort compress` (student/config.json)."
        )
    if source is None:
        path = (report or {}).get("source", {}).get("path")
        if not path:
            raise ValueError(
                "source was not given and no compression_report.json beside the student names it; pass source=."
            )
        source = path
    source = Path(source)
    if not (source / "config.json").is_file():
        raise ValueError(f"source={str(source)!r} is not a classifier folder (no config.json).")
    return student, source, report


def _load_classifier(path: Path):
    """(sequence classifier in eval mode, tokenizer); a head the checkpoint lacks (random init) is refused."""
    import transformers

    from ..models.bort import register

    register()  # the bort Auto classes

    from ..models.heads import load_with_head

    model = load_with_head(
        transformers.AutoModelForSequenceClassification,
        str(path),
        "text-classification",
        field="model_or_path",
        advice="Benchmark fine-tuned classifiers (a compress run's student and its source).",
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{str(path)!r} has no usable tokenizer ({error}): the accuracy needs one.") from error
    return model.eval(), tokenizer


def _load_data(config: CompressedBenchConfig, report: dict[str, Any] | None, model) -> tuple[Any, dict[str, Any]]:
    from ..data import load_task_data  # the same loading and label checks as `compress`

    info: dict[str, Any] = {}
    dataset = config.dataset
    seed = config.rt_seed
    if dataset is None:
        from ..assets import load_rotten_tomatoes

        if seed is None:
            seed = int((report or {}).get("settings", {}).get("seed", 0))
        dataset = load_rotten_tomatoes(seed=seed)
        info["source"] = f"packaged Rotten Tomatoes, hf_bort.assets.load_rotten_tomatoes(seed={seed})"
    else:
        info["source"] = str(dataset) if isinstance(dataset, (str, os.PathLike)) else type(dataset).__name__
    settings = SimpleNamespace(
        dataset=dataset,
        seed=seed or 0,
        train_split=config.train_split,
        validation_split=config.validation_split,
        test_split=config.test_split,
        text_column=config.text_column,
        label_column=config.label_column,
        validation_fraction=0.1,
        label_names_column=None,  # the class names are the student's id2label
        label_names=None,
        text_pair_column=None,
    )
    data = load_task_data(settings, model.config.label2id, model.config.num_labels)
    if data.test is None:
        raise ValueError(f"the dataset has no {config.test_split!r} split: the accuracy needs labelled test rows.")
    expected = (report or {}).get("data", {}).get("fingerprint")
    info["fingerprint"] = data.fingerprint()
    info["compress_fingerprint"] = expected
    info["matches_compress_run"] = None if expected is None else expected == info["fingerprint"]
    if info["matches_compress_run"] is False:
        logger.warning(
            "The benchmark's data (fingerprint %s) differ from the compress run's (%s): its test split may overlap "
            "the data the student was trained on.",
            info["fingerprint"],
            expected,
        )
    info.update(notes=data.notes, label_names=data.label_names)
    return data, info


def _predict(
    runner: Callable[[dict[str, Any]], Any], tokenizer, texts: list[str], batch_size: int, max_length: int
) -> list[int]:
    predictions: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        predictions.extend(int(i) for i in runner(dict(batch)).argmax(-1))
    return predictions


def _engine_runner(engine: str, model, path: str | None, threads: int):
    import numpy as np
    import torch

    if engine == "pytorch":

        def run(batch: dict[str, Any]):
            with torch.inference_mode():
                return model(**batch).logits.numpy()

        return run, None
    session = ort_session(path, threads)
    names = {item.name for item in session.get_inputs()}

    def run(batch: dict[str, Any]):
        return np.asarray(session.run(["logits"], {k: v.numpy() for k, v in batch.items() if k in names})[0])

    return run, session


def run_compressed_benchmark(
    student: str | os.PathLike,
    source: str | os.PathLike | None = None,
    config: CompressedBenchConfig | None = None,
    log: Callable[[str], None] | None = print,
) -> CompressedBenchResult:
    """Benchmark a compressed student classifier against its source: see the module docstring.

    Args:
        student: the student classifier folder, or the output folder of `hf-bort compress`.
        source: the source classifier folder (default: the one `compression_report.json` names).
        config: [`CompressedBenchConfig`].
        log: progress printer (None: silent).

    Example:

    ```python
    >>> from hf_bort.exporters import CompressedBenchConfig, run_compressed_benchmark
    >>> result = run_compressed_benchmark("rt-compressed", config=CompressedBenchConfig(max_eval_rows=200))
    >>> paths = result.save("bench-results")  # bench_compressed.json / .md / .png
    ```
    """
    import torch

    from .onnx import export_onnx, require_onnx

    config = config or CompressedBenchConfig()
    log = log or (lambda message: None)
    student_path, source_path, report = resolve_compressed(student, source)
    needs_ort = any(engine != "pytorch" for engine in config.engines)
    if needs_ort:
        require_onnx()
    models = {"source": source_path, "student": student_path}
    loaded = {name: _load_classifier(path) for name, path in models.items()}
    if loaded["source"][0].config.num_labels != loaded["student"][0].config.num_labels:
        raise ValueError(
            f"source and student have different numbers of labels ({loaded['source'][0].config.num_labels} vs "
            f"{loaded['student'][0].config.num_labels})."
        )
    data, data_info = _load_data(config, report, loaded["student"][0])
    max_length = config.max_length or int((report or {}).get("settings", {}).get("max_length") or 128)
    test = (
        data.test
        if config.max_eval_rows is None
        else data.test.select(range(min(config.max_eval_rows, len(data.test))))
    )
    test_texts, test_labels = list(test["text"]), list(test["label"])
    validation_texts = list(data.validation["text"][: config.validation_rows])
    calibration_texts = list(data.train["text"][: config.calibration_rows])
    data_info.update(
        test_rows=len(test_texts),
        validation_rows=len(validation_texts),
        calibration_rows=len(calibration_texts),
        max_length=max_length,
    )

    torch.set_num_threads(config.threads)
    peak = measure_matmul_peak(config.threads, config.peak_size)
    machine = bench_machine_info(config.threads, peak)
    log(f"threads={config.threads} matmul peak {peak:.1f} GFLOP/s; test rows {len(test_texts)}")
    rows: list[dict[str, Any]] = []
    accuracy: list[dict[str, Any]] = []
    model_info: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hf-bort-bench-") as workdir:
        for name, path in models.items():
            model, tokenizer = loaded[name]
            info: dict[str, Any] = {
                "path": str(path),
                "model_type": model.config.model_type,
                "class": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()),
                "encoder_multiply_adds_128": multiply_adds(model.config, 1, 128),
            }
            onnx_paths: dict[str, str] = {}
            if needs_ort:
                started = time.perf_counter()
                wants_int8 = "ort-int8" in config.engines
                export = export_onnx(
                    model,
                    Path(workdir) / name,
                    task="text-classification",
                    quantize=config.int8 if wants_int8 else None,
                    tokenizer=tokenizer,
                    atol=config.atol,
                    validation_texts=validation_texts,
                    calibration_texts=calibration_texts,
                    int8=Int8Config(
                        target=config.int8_target,
                        best_effort=True,
                        keep_variants=True,
                        threads=config.threads,
                        latency_max_seconds=min(config.max_seconds, 5.0),
                    )
                    if wants_int8
                    else None,
                )
                onnx_paths["ort-fp32"] = export.onnx_path
                info.update(
                    export_seconds=time.perf_counter() - started,
                    max_abs_diff=export.max_abs_diff,
                    fused_operators={op: count for op, count in export.fused_operators.items() if count},
                    attention_fused=export.attention_fused,
                )
                if wants_int8:
                    int8_path, variant, meets_thresholds = _int8_file(export)
                    onnx_paths["ort-int8"] = int8_path
                    info.update(
                        int8_variant=variant,
                        int8_meets_thresholds=meets_thresholds,
                        quantization=export.quantization,
                    )
                log(f"{name}: exported ({export.fusion_summary()}); int8: {info.get('int8_variant')}")
            for engine in config.engines:
                started = time.perf_counter()
                runner, session = _engine_runner(engine, model, onnx_paths.get(engine), config.threads)
                predictions = _predict(runner, tokenizer, test_texts, config.eval_batch_size, max_length)
                del runner, session
                gc.collect()
                entry = {
                    "model": name,
                    "engine": engine,
                    "accuracy": statistics.fmean(int(p == y) for p, y in zip(predictions, test_labels, strict=True)),
                    "predictions": predictions,
                    "seconds": time.perf_counter() - started,
                }
                if engine == "ort-int8":
                    entry["int8_variant"] = info.get("int8_variant")
                accuracy.append(entry)
                log(f"{name} {engine}: test accuracy {100 * entry['accuracy']:.2f}%")
            reference = next(item["predictions"] for item in accuracy if item["model"] == name)
            for item in accuracy:
                if item["model"] == name:
                    item["agreement_with_pytorch"] = statistics.fmean(
                        int(a == b) for a, b in zip(item["predictions"], reference, strict=True)
                    )
            model_info[name] = info
            for batch_size in config.batch_sizes:
                for seq_len in config.seq_lengths:
                    macs = multiply_adds(model.config, batch_size, seq_len)
                    inputs = random_inputs(model.config, batch_size, seq_len, config.seed)
                    for engine in config.engines:
                        times = time_engine(engine, model, inputs, onnx_paths, config)
                        rows.append(timing_row(name, engine, batch_size, seq_len, times, macs, peak))
                        log(f"{name} {engine} b={batch_size} L={seq_len}: p50 {rows[-1]['p50_ms']:.2f} ms")
            del model
            loaded[name] = (None, None)
            gc.collect()
    for item in accuracy:
        item.pop("predictions")
    machine["load_average_end"] = os.getloadavg()
    settings = asdict(replace(config, dataset=data_info["source"]))  # an in-memory dataset is named, not copied
    return CompressedBenchResult(
        config=settings,
        machine=machine,
        models=model_info,
        rows=rows,
        engine_ratios=engine_ratios(rows),
        comparisons=speedup_comparisons(rows, [("student", "source")]),
        accuracy=accuracy,
        data=data_info,
    )


def _int8_file(export) -> tuple[str, str, bool]:
    """(path, variant, meets thresholds) of the int8 model to time: the chosen one, or — when `auto` kept fp32
    only — the variant with the highest agreement, flagged as not meeting the thresholds."""
    report = export.quantization
    folder = Path(export.output_dir)
    if report["chosen"] is not None:
        return str(folder / "model_quantized.onnx"), report["chosen"], True
    best = max(report["variants"], key=lambda entry: entry.get("label_agreement", 0.0))
    logger.warning(
        "quantize='auto' kept fp32 only (%s); timing %s (highest agreement) anyway, flagged.",
        report["reason"],
        best["variant"],
    )
    return str(folder / best["file"]), best["variant"], False


__all__ = [
    "ENGINES",
    "CompressedBenchConfig",
    "CompressedBenchResult",
    "plot_latency_accuracy",
    "resolve_compressed",
    "run_compressed_benchmark",
]
