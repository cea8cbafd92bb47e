"""`hf-bort export` and `hf-bort bench` subcommands (wired into `hf-bort` by `add_commands`)."""

from __future__ import annotations

import json
import sys

from .._cli import add_command, command_parser, parse_dataclasses
from .cli_config import BenchArguments, ExportArguments

EXPORT_POSITIONALS = ("model", "output_dir")
BENCH_POSITIONALS = ("models",)


def _read_texts(path: str | None, option: str) -> list[str] | None:
    """Non-empty lines of a UTF-8 text file (one text per line)."""
    if path is None:
        return None
    from .._text import read_utf8

    try:
        return [line.strip() for line in read_utf8(path, option).splitlines() if line.strip()]
    except OSError as error:
        raise ValueError(f"{option}: cannot read {path!r}: {error}") from error


def _export_parser():
    return command_parser(
        ExportArguments,
        "hf-bort export",
        "Export to ONNX (optimum), validate with ONNX Runtime on real sentences, optionally int8.",
        EXPORT_POSITIONALS,
    )


def _bench_parser():
    return command_parser(
        BenchArguments,
        "hf-bort bench",
        "CPU benchmark of models (paths or named models); or, with --student, a compressed classifier against its "
        "source: speed of each engine next to its test accuracy.",
        BENCH_POSITIONALS,
    )


def parse_export(argv: list[str]) -> ExportArguments:
    (args,) = parse_dataclasses(_export_parser(), argv, EXPORT_POSITIONALS)
    return args


def parse_bench(argv: list[str]) -> BenchArguments:
    (args,) = parse_dataclasses(_bench_parser(), argv, BENCH_POSITIONALS)
    return args


def _export(argv: list[str]) -> int:
    from .._outputs import check_output_dir
    from .._sources import check_source
    from .onnx import OnnxValidationError, export_onnx
    from .quantize import Int8AgreementError, report_summary

    try:
        args = parse_export(argv)
        check_output_dir(args.output_dir, "output_dir")
        check_source(args.model, "model")
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
            int8=args.int8_config(),
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


def _bench(argv: list[str]) -> int:
    from .._outputs import check_output_dir

    try:
        args = parse_bench(argv)
        check_output_dir(args.output_dir, "output_dir")
        log = (lambda message: print(message, file=sys.stderr)) if args.verbose else None
        if args.student:
            from .bench_compressed import run_compressed_benchmark

            result = run_compressed_benchmark(args.student, args.source, args.config(), log=log)
        else:
            from .bench import run_benchmark

            result = run_benchmark(list(args.models), args.config(), comparisons=args.comparisons(), log=log)
    except (ValueError, TypeError, ImportError, OSError) as error:
        print(f"hf-bort bench: error: {error}", file=sys.stderr)
        return 2
    paths = result.save(args.output_dir, **({"name": args.name} if args.name else {}))
    print(result.to_markdown())
    print(json.dumps(paths))
    return 0


def add_commands(subparsers) -> None:
    """Add `export` and `bench` to the `hf-bort` sub-parsers."""
    add_command(
        subparsers,
        "export",
        help="Export a Bort (or BERT-family) checkpoint to ONNX with optimum, validated against PyTorch.",
        parser=_export_parser,
        run=_export,
    )
    add_command(
        subparsers,
        "bench",
        help="CPU benchmark: PyTorch eager vs ORT fp32 vs ORT int8, with analytic multiply-add ratios.",
        parser=_bench_parser,
        run=_bench,
    )
