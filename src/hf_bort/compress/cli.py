"""`hf-bort compress MODEL --dataset DATA --max-cost-ratio 0.25 --output-dir OUT`: flags are `CompressionConfig`'s."""

from __future__ import annotations

import argparse
import sys


def _parser():
    from transformers import HfArgumentParser

    from .._cli import CONFIG_HELP, HelpFormatter, dashes_first
    from .config import CompressionConfig

    parser = HfArgumentParser(CompressionConfig, prog="hf-bort compress", formatter_class=HelpFormatter)
    parser.add_argument("--config", help=CONFIG_HELP)
    return dashes_first(parser)


def parse(argv: list[str]):
    """`CompressionConfig` from command-line arguments; a first argument without dashes is the model."""
    if argv and not argv[0].startswith("-"):
        argv = ["--model", argv[0], *argv[1:]]
    from .._cli import parse_dataclasses

    (config,) = parse_dataclasses(_parser(), argv)
    return config


def run(argv: list[str]) -> int:
    from .pipeline import compress

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: hf-bort compress MODEL --dataset DATA [--max-cost-ratio R] [--output-dir DIR] [--config FILE] "
            "[options]\n"
        )
        _parser().print_help()
        return 0
    result = compress(parse(argv))
    print(result.summary())
    print(f"student in {result.student_path}; report in {result.output_dir / 'compression_report.json'}")
    print(f"model card in {result.student_path / 'README.md'}")
    if "hub" in result.report:
        print(f"pushed to https://huggingface.co/{result.report['hub']['repo_id']}")
    return 0


def add_commands(subparsers) -> None:
    """Adds `compress` to the `hf-bort` sub-commands."""
    parser = subparsers.add_parser(
        "compress",
        help="Find, extract, distil and validate the best sub-network of MODEL within a budget.",
        description="Every CompressionConfig field is a flag (see `hf-bort compress --help`).",
        add_help=False,
        prefix_chars="+",  # every --option goes to HfArgumentParser, not to argparse's sub-parser
    )
    parser.add_argument(
        "compress_args", nargs=argparse.REMAINDER, help="MODEL and CompressionConfig flags (see --help)."
    )
    parser.set_defaults(func=lambda args: run(args.compress_args), full_parser=_parser)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
