"""`hf-bort compress MODEL --dataset DATA --max-cost-ratio 0.25 --output-dir OUT`: flags are `CompressionConfig`'s."""

from __future__ import annotations

import sys


def _parser():
    from .._cli import command_parser
    from .config import CompressionConfig

    return command_parser(
        CompressionConfig,
        "hf-bort compress",
        "Find, extract, distil and validate the best sub-network of MODEL within a budget "
        "(`hf-bort compress MODEL --dataset DATA --max-cost-ratio 0.25 --output-dir OUT`).",
        ("model",),
    )


def parse(argv: list[str]):
    """`CompressionConfig` from command-line arguments; an argument without dashes is the model."""
    from .._cli import parse_dataclasses

    (config,) = parse_dataclasses(_parser(), argv, ("model",))
    return config


def run(argv: list[str]) -> int:
    from .pipeline import compress

    result = compress(parse(argv))
    print(result.summary())
    print(f"student in {result.student_path}; report in {result.output_dir / 'compression_report.json'}")
    print(f"model card in {result.student_path / 'README.md'}")
    if "hub" in result.report:
        print(f"pushed to https://huggingface.co/{result.report['hub']['repo_id']}")
    return 0


def add_commands(subparsers) -> None:
    """Adds `compress` to the `hf-bort` sub-commands."""
    from .._cli import add_command

    add_command(
        subparsers,
        "compress",
        help="Find, extract, distil and validate the best sub-network of MODEL within a budget.",
        parser=_parser,
        run=run,
        help_if_empty=True,
    )


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
