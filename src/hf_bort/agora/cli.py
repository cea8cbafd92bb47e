"""`hf-bort agora`: Agora fine-tuning from the command line (arguments: `AgoraCliArguments` + `AgoraConfig`)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field


@dataclass
class AgoraCliArguments:
    """What to train on what; every `AgoraConfig`/`TrainingArguments` field is accepted too."""

    model_name_or_path: str = field(metadata={"help": "Student: any sequence-classification checkpoint or encoder."})
    labeller_name_or_path: str = field(metadata={"help": "Labeller: a sequence-classification checkpoint."})
    train_file: str = field(metadata={"help": "Training data, .csv or .json/.jsonl with text and label columns."})
    dev_file: str = field(metadata={"help": "Dev data (labelled), same format."})
    test_file: str | None = field(default=None, metadata={"help": "Optional held-out test data to report on."})
    pool_file: str | None = field(default=None, metadata={"help": "Unlabelled texts, one a line ('pool' sampler)."})
    label_column: str = field(default="label", metadata={"help": "Label column (integer ids)."})
    num_labels: int = field(default=2, metadata={"help": "Number of classes of the student's fresh head."})


def _full_parser():
    from transformers import HfArgumentParser

    from .._cli import HelpFormatter
    from .config import AgoraConfig

    return HfArgumentParser((AgoraCliArguments, AgoraConfig), prog="hf-bort agora", formatter_class=HelpFormatter)


def _load(path: str):
    from datasets import load_dataset

    kind = "csv" if path.endswith(".csv") else "json"
    return load_dataset(kind, data_files=path, split="train")


def run(argv: list[str]) -> int:
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .._outputs import check_output_dir
    from .._sources import check_source
    from .trainer import AgoraTrainer, resolve_resume_checkpoint

    cli, config = _full_parser().parse_args_into_dataclasses(argv)
    check_output_dir(config.output_dir, "output_dir")  # a file or an unwritable folder: before any model is loaded
    check_source(cli.model_name_or_path, "model_name_or_path")
    check_source(cli.labeller_name_or_path, "labeller_name_or_path")
    resume = resolve_resume_checkpoint(config.resume_from_checkpoint, config.output_dir)  # before any loading
    tokenizer = AutoTokenizer.from_pretrained(cli.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(cli.model_name_or_path, num_labels=cli.num_labels)
    labeller = AutoModelForSequenceClassification.from_pretrained(cli.labeller_name_or_path)
    labeller_tokenizer = AutoTokenizer.from_pretrained(cli.labeller_name_or_path)

    def prepare(path):
        data = _load(path)
        if cli.label_column != "label":
            data = data.rename_column(cli.label_column, "label")
        column = config.agora_text_column
        return data.map(
            lambda b: tokenizer(b[column], truncation=True, max_length=config.agora_max_length), batched=True
        )

    pool = None
    if cli.pool_file:
        with open(cli.pool_file, encoding="utf-8") as handle:
            pool = [line.strip() for line in handle if line.strip()]

    def metrics(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    trainer = AgoraTrainer(
        model=model,
        args=config,
        train_dataset=prepare(cli.train_file),
        eval_dataset=prepare(cli.dev_file),
        processing_class=tokenizer,
        labeller=(labeller, labeller_tokenizer),
        unlabelled_pool=pool,
        compute_metrics=metrics,
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    report = {"history": [asdict(h) for h in trainer.agora_history]}
    if cli.test_file:
        report["test"] = trainer.evaluate(prepare(cli.test_file), metric_key_prefix="test")
    print(json.dumps(report))
    return 0


def add_commands(subparsers) -> None:
    """Adds `agora` to the `hf-bort` sub-commands."""
    parser = subparsers.add_parser(
        "agora",
        help="Agora fine-tuning: train, relabel samples near dev errors, add them, repeat.",
        description="All AgoraConfig / TrainingArguments fields are accepted (see `hf-bort agora --help-all`).",
        add_help=False,
        prefix_chars="+",  # every --option goes to HfArgumentParser below, not to argparse's sub-parser
    )
    parser.add_argument(
        "agora_args", nargs=argparse.REMAINDER, help="AgoraConfig / TrainingArguments flags (see --help)."
    )
    parser.set_defaults(func=lambda args: _dispatch(args.agora_args), full_parser=_full_parser)


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "--help-all"):
        _full_parser().print_help()
        return 0
    return run(argv)
