"""`hf-bort` command line: one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _convert(args: argparse.Namespace) -> int:
    import math

    import torch

    from ._outputs import check_not_overlapping
    from .models.bort import convert_to_bort, max_output_difference
    from .models.bort.convert import _load_source, _load_tokenizer, save_converted

    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ValueError(f"--tolerance must be a finite number >= 0; got {args.tolerance!r}.")
    check_not_overlapping(args.source, args.output_dir, "source")
    source = _load_source(args.source).eval()
    bort = convert_to_bort(source)  # validated below before anything is written
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, source.config.vocab_size, (2, 16), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if type(bort).__name__ == "BortForMultipleChoice":
        inputs = {key: value.unsqueeze(1) for key, value in inputs.items()}
    difference = max_output_difference(source, bort, inputs)
    report = {
        "source": str(args.source),
        "output_dir": str(args.output_dir),
        "class": type(bort).__name__,
        "max_abs_difference": difference,
    }
    if not difference <= args.tolerance:
        print(json.dumps({**report, "saved": False}))
        print(
            f"hf-bort convert: error: the converted model's outputs differ from the source's by {difference:.3g}, "
            f"more than --tolerance {args.tolerance:g}; nothing was saved to {args.output_dir}.",
            file=sys.stderr,
        )
        return 1
    from .models.sentence_transformers_folder import transformer_source

    save_converted(
        bort,
        args.output_dir,
        _load_tokenizer(transformer_source(args.source)),
        args.source,
        source=args.source,
        max_abs_difference=difference,
    )
    print(json.dumps({**report, "saved": True}))
    return 0


def _count(args: argparse.Namespace) -> int:
    from transformers import AutoConfig

    from .models.bort import BORT_PRESETS, BortConfig, count_parameters

    if args.source in BORT_PRESETS and not os.path.exists(args.source):  # an existing folder is a path, never a preset
        config = BortConfig.from_preset(args.source)
    else:
        config = AutoConfig.from_pretrained(args.source)
    print(json.dumps(count_parameters(config, task=args.task).to_dict()))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_report, run_demo

    overrides = {} if args.threads is None else {"threads": args.threads}
    result = run_demo(args.output_dir, overwrite_output_dir=args.overwrite_output_dir, **overrides)
    print(json.dumps(result.report, indent=1, default=str) if args.json else format_report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from ._cli import HelpFormatter, api_default
    from .demo import run_demo
    from .models.bort import count_parameters

    parser = argparse.ArgumentParser(prog="hf-bort", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"hf-bort {__version__}", help="Print the version.")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser(
        "convert", help="Convert an encoder checkpoint (path or Hub id) to Bort.", formatter_class=HelpFormatter
    )
    convert.add_argument(
        "source", help="Path or Hub id of a BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT or MPNet model."
    )
    convert.add_argument("output_dir", help="Where to save the Bort checkpoint and tokenizer.")
    convert.add_argument(
        "--tolerance", type=float, default=1e-5, help="Largest output difference from the source accepted."
    )
    convert.set_defaults(func=_convert)

    count = sub.add_parser(
        "count",
        help="Exact parameter count of a config (path, Hub id, or bort / bort-paper).",
        formatter_class=HelpFormatter,
    )
    count.add_argument("source", help="A model folder or Hub id (an existing folder is always a path), or a preset.")
    count.add_argument(
        "--task",
        default=api_default(count_parameters, "task"),
        help="Head counted with the encoder (a pipeline task).",
    )
    count.set_defaults(func=_count)

    demo = sub.add_parser(
        "demo",
        help="The whole pipeline on the packaged all-MiniLM-L6-v2 + Rotten Tomatoes with a reduced budget (~10 min): "
        "compress, ONNX export, model card.",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--output-dir", default=api_default(run_demo, "output_dir"), help="Output folder (resumable).")
    demo.add_argument(
        "--overwrite-output-dir", action="store_true", help="Start again in a folder that holds another run."
    )
    demo.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    demo.add_argument("--json", action="store_true", help="Print the whole compression report as JSON.")
    demo.set_defaults(func=_demo)

    # Later pipeline stages add their own subcommands (each module imports its heavy dependencies lazily).
    from .agora.cli import add_commands as add_agora_commands
    from .compress.cli import add_commands as add_compress_commands
    from .exporters.cli import add_commands as add_export_commands
    from .hub import add_commands as add_hub_commands
    from .ose.cli import add_commands as add_ose_commands

    add_compress_commands(sub)
    add_ose_commands(sub)
    add_agora_commands(sub)
    add_export_commands(sub)
    add_hub_commands(sub)
    return parser


# Arguments that name a folder the command writes: checked before any work (a file there made transformers'
# `save_pretrained` log an error and return, so commands reported success while saving nothing).
OUTPUT_FOLDER_ARGUMENTS = ("output_dir", "save_directory")


def _check_output_folders(args: argparse.Namespace) -> None:
    from ._outputs import check_output_dir

    for name in OUTPUT_FOLDER_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            check_output_dir(value, name)


# Arguments that name a source model (a folder or a Hub id), per command: checked before any work, so a missing path
# or a file says so instead of transformers' "check your internet connection". (`search`, `compress` and `agora` check
# theirs after HfArgumentParser has read them.)
SOURCE_ARGUMENTS = {
    "convert": ("source",),
    "count": ("source",),
    "extract": ("source",),
    "distill": ("student", "teacher"),
    "export": ("model",),
}


def _check_sources(args: argparse.Namespace) -> None:
    from ._sources import check_source
    from .models.bort import BORT_PRESETS

    for name in SOURCE_ARGUMENTS.get(args.command, ()):
        value = getattr(args, name)
        if args.command == "count" and value in BORT_PRESETS and not os.path.exists(value):
            continue
        check_source(value, name)


def main(argv: Sequence[str] | None = None) -> int:
    from ._lock import InUseError

    args = build_parser().parse_args(argv)
    try:
        _check_output_folders(args)
        _check_sources(args)
        if args.command == "extract":  # the extracted checkpoint must not land in (and replace) its source
            from ._outputs import check_not_overlapping

            check_not_overlapping(args.source, args.save_directory, "source", "save_directory")
        return args.func(args)
    except (ValueError, TypeError, ImportError, OSError, InUseError) as error:
        print(f"hf-bort {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
