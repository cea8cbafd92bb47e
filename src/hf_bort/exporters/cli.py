"""`hf-bort export` and `hf-bort bench` subcommands (wired into `hf-bort` by `add_commands`)."""

from __future__ import annotations

import argparse
import json
import sys

from .bench import ENGINES, NAMED_MODELS
from .onnx import QUANTIZE_CHOICES, SUPPORTED_TASKS


def _export(args: argparse.Namespace) -> int:
    from .onnx import OnnxValidationError, export_onnx

    try:
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
        )
    except OnnxValidationError as error:
        print(f"hf-bort export: validation failed: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"hf-bort export: error: {error}", file=sys.stderr)
        return 2
    print(f"hf-bort export: {result.fusion_summary()}", file=sys.stderr)
    print(json.dumps(result.to_dict()))
    return 0


def _pair(text: str) -> tuple[str, str]:
    model, sep, reference = text.partition(":")
    if not sep or not model or not reference:
        raise argparse.ArgumentTypeError(f"--compare expects MODEL:REFERENCE, got {text!r}")
    return model, reference


def _bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, run_benchmark

    try:
        config = BenchConfig(
            batch_sizes=args.batch_sizes,
            seq_lengths=args.seq_lengths,
            threads=args.threads,
            warmup=args.warmup,
            iterations=args.iterations,
            max_seconds=args.max_seconds,
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
    paths = result.save(args.output_dir, name=args.name)
    print(result.to_markdown())
    print(json.dumps(paths))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and `bench` to the `hf-bort` sub-parsers."""
    export = subparsers.add_parser(
        "export",
        help="Export a Bort (or BERT-family) checkpoint to ONNX with optimum, validated against PyTorch.",
        description="Export to ONNX (optimum), validate with ONNX Runtime on real sentences, optionally int8.",
    )
    export.add_argument("model", help="Checkpoint path or Hub id (bort, bert, roberta, xlm-roberta, electra, ...).")
    export.add_argument("output_dir", help="Directory for model.onnx, config and tokenizer (ORTModel layout).")
    export.add_argument("--task", choices=SUPPORTED_TASKS, default="feature-extraction")
    export.add_argument("--quantize", choices=QUANTIZE_CHOICES, default=None, help="Also write model_quantized.onnx.")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default 14).")
    export.add_argument("--atol", type=float, default=1e-4, help="Largest accepted |ORT - PyTorch| (fp32).")
    export.add_argument(
        "--min-argmax-agreement", type=float, default=None, help="With --quantize: fail below this int8 agreement."
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
        description=f"Benchmark models (paths or {', '.join(NAMED_MODELS)}) on the CPU.",
    )
    bench.add_argument("models", nargs="+", help=f"Paths / Hub ids, or named models: {', '.join(NAMED_MODELS)}.")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    bench.add_argument("--seq-lengths", type=int, nargs="+", default=[128])
    bench.add_argument("--threads", type=int, default=0, help="Threads for PyTorch and ORT (0: all cores).")
    bench.add_argument("--warmup", type=int, default=3)
    bench.add_argument("--iterations", type=int, default=20)
    bench.add_argument("--max-seconds", type=float, default=10.0, help="Time budget per cell (>= 3 timed runs).")
    bench.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    bench.add_argument("--atol", type=float, default=1e-3, help="Export validation tolerance.")
    bench.add_argument(
        "--compare", type=_pair, action="append", help="MODEL:REFERENCE pair for speedup vs analytic ratio."
    )
    bench.add_argument("--output-dir", default="bench-results")
    bench.add_argument("--name", default="bench", help="Base name of the .json / .md / .png files.")
    bench.add_argument("--verbose", action="store_true", help="Print progress to stderr.")
    bench.set_defaults(func=_bench)
