"""`hf-bort` command line: one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._cli import HelpFormatter, add_command, api_default, check_strings, command_parser, parse_dataclasses
from .compress.config import CompressionConfig
from .demo import run_demo


@dataclass
class DemoArguments:
    """Settings of `hf-bort demo` (defaults: `run_demo`'s and `CompressionConfig`'s)."""

    output_dir: str = field(
        default=api_default(run_demo, "output_dir"), metadata={"help": "Output folder (resumable)."}
    )
    overwrite_output_dir: bool = field(
        default=api_default(CompressionConfig, "overwrite_output_dir"),
        metadata={"help": "Start again in a folder that holds another run."},
    )
    threads: int | None = field(
        default=api_default(CompressionConfig, "threads"),
        metadata={"help": "torch threads (default: torch's choice)."},
    )
    json: bool = field(default=False, metadata={"help": "Print the whole compression report as JSON."})

    def __post_init__(self) -> None:
        check_strings(self, "output_dir", what="a folder path")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads > 0):
            raise ValueError(f"`threads` must be a positive integer or unset, got {self.threads!r}.")


def _demo_parser():
    return command_parser(
        DemoArguments,
        "hf-bort demo",
        "The whole pipeline on the packaged all-MiniLM-L6-v2 + Rotten Tomatoes with a reduced budget.",
    )


def parse_demo(argv: list[str]) -> DemoArguments:
    (args,) = parse_dataclasses(_demo_parser(), argv)
    return args


def _demo(argv: list[str]) -> int:
    from ._outputs import check_output_dir
    from .demo import format_report

    args = parse_demo(argv)
    check_output_dir(args.output_dir, "output_dir")
    overrides = {} if args.threads is None else {"threads": args.threads}
    result = run_demo(args.output_dir, overwrite_output_dir=args.overwrite_output_dir, **overrides)
    print(json.dumps(result.report, indent=1, default=str) if args.json else format_report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="hf-bort", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"hf-bort {__version__}", help="Print the version.")
    sub = parser.add_subparsers(dest="command", required=True)

    # Each command parses its own flags with HfArgumentParser (and imports its heavy dependencies lazily).
    from .agora.cli import add_commands as add_agora_commands
    from .compress.cli import add_commands as add_compress_commands
    from .exporters.cli import add_commands as add_export_commands
    from .hub import add_commands as add_hub_commands
    from .models.cli import add_commands as add_model_commands
    from .ose.cli import add_commands as add_ose_commands

    add_model_commands(sub)
    add_command(
        sub,
        "demo",
        help="The whole pipeline on the packaged all-MiniLM-L6-v2 + Rotten Tomatoes with a reduced budget (~10 min): "
        "compress, ONNX export, model card.",
        parser=_demo_parser,
        run=_demo,
    )
    add_compress_commands(sub)
    add_ose_commands(sub)
    add_agora_commands(sub)
    add_export_commands(sub)
    add_hub_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._lock import InUseError

    args = build_parser().parse_args(argv)
    try:
        # each command checks its output folders and sources right after parsing, before any work
        return args.func(args)
    except (ValueError, TypeError, ImportError, OSError, InUseError) as error:
        print(f"hf-bort {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
