"""`hf-bort convert SOURCE OUTPUT_DIR` and `hf-bort count SOURCE`: flags are `ConvertArguments` / `CountArguments`."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field

from .._cli import add_command, api_default, check_strings, command_parser, parse_dataclasses
from . import SUPPORTED_FAMILIES
from .bort.parameters import count_parameters


@dataclass
class ConvertArguments:
    """Settings of `hf-bort convert SOURCE OUTPUT_DIR` (`--config FILE` reads them from a YAML/JSON file)."""

    source: str = field(
        metadata={"help": f"Path or Hub id of a model of a supported family: {SUPPORTED_FAMILIES} (amazon/bort too)."}
    )
    output_dir: str = field(metadata={"help": "Where to save the Bort checkpoint and tokenizer."})
    tolerance: float = field(
        default=1e-5, metadata={"help": "Largest output difference from the source accepted (nothing saved above)."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace a non-empty output directory (as `export --overwrite`)."}
    )

    def __post_init__(self) -> None:
        check_strings(self, "source", "output_dir")
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"`tolerance` (--tolerance) must be a finite number >= 0; got {self.tolerance!r}.")


@dataclass
class CountArguments:
    """Settings of `hf-bort count SOURCE`."""

    source: str = field(
        metadata={"help": "A model folder or Hub id (an existing folder is always a path), or a preset (bort, ...)."}
    )
    task: str = field(
        default=api_default(count_parameters, "task"),
        metadata={"help": "Head counted with the encoder (a pipeline task)."},
    )

    def __post_init__(self) -> None:
        check_strings(self, "source")
        check_strings(self, "task", what="a pipeline task")


def _convert_parser():
    return command_parser(
        ConvertArguments,
        "hf-bort convert",
        "Convert an encoder checkpoint to Bort; saved only if its outputs match the source's.",
        ("source", "output_dir"),
    )


def _count_parser():
    return command_parser(
        CountArguments, "hf-bort count", "Exact parameter count of a model, Hub id or preset.", ("source",)
    )


def parse_convert(argv: list[str]) -> ConvertArguments:
    (args,) = parse_dataclasses(_convert_parser(), argv, ("source", "output_dir"))
    return args


def parse_count(argv: list[str]) -> CountArguments:
    (args,) = parse_dataclasses(_count_parser(), argv, ("source",))
    return args


def run_convert(argv: list[str]) -> int:
    import torch

    from .._outputs import check_not_overlapping, check_output_dir, check_overwrite
    from .._sources import check_source
    from . import bort
    from .bort.convert import load_source, load_tokenizer, save_converted
    from .sentence_transformers_folder import transformer_source

    args = parse_convert(argv)
    check_output_dir(args.output_dir, "output_dir")
    check_source(args.source, "source")
    check_not_overlapping(args.source, args.output_dir, "source")
    check_overwrite(args.output_dir, args.overwrite)  # the rule of every writer, before anything is loaded
    source = load_source(args.source).eval()
    converted = bort.convert_to_bort(source)  # validated below before anything is written
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, source.config.vocab_size, (2, 16), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if type(converted).__name__ == "BortForMultipleChoice":
        inputs = {key: value.unsqueeze(1) for key, value in inputs.items()}
    difference = bort.max_output_difference(source, converted, inputs)
    report = {
        "source": str(args.source),
        "output_dir": str(args.output_dir),
        "class": type(converted).__name__,
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
    save_converted(
        converted,
        args.output_dir,
        load_tokenizer(transformer_source(args.source)),
        args.source,
        source=args.source,
        max_abs_difference=difference,
        overwrite=args.overwrite,
    )
    print(json.dumps({**report, "saved": True}))
    return 0


def run_count(argv: list[str]) -> int:
    from transformers import AutoConfig

    from .._sources import check_source
    from .bort import BORT_PRESETS, BortConfig

    args = parse_count(argv)
    if args.source in BORT_PRESETS and not os.path.exists(args.source):  # an existing folder is a path, never a preset
        config = BortConfig.from_preset(args.source)
    else:
        check_source(args.source, "source")
        config = AutoConfig.from_pretrained(args.source)
    print(json.dumps(count_parameters(config, task=args.task).to_dict()))
    return 0


def add_commands(subparsers) -> None:
    """Adds `convert` and `count` to the `hf-bort` sub-commands."""
    add_command(
        subparsers,
        "convert",
        help="Convert an encoder checkpoint (path or Hub id) to Bort.",
        parser=_convert_parser,
        run=run_convert,
    )
    add_command(
        subparsers,
        "count",
        help="Exact parameter count of a config (path, Hub id, or bort / bort-paper).",
        parser=_count_parser,
        run=run_count,
    )
