"""
`hf-bort agora`: Agora fine-tuning from the command line (arguments: `AgoraCliArguments` + `AgoraConfig`).

`--help` lists this command's own options (data and models, the `agora_*` fields, the most used `TrainingArguments`);
`--help-all` lists every `TrainingArguments` option too. Flags take dashes (`--output-dir`); HfArgumentParser also
accepts the field names (`--output_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
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


# TrainingArguments fields `hf-bort agora --help` lists beside the command's own (all of them: --help-all).
COMMON_TRAINING_ARGUMENTS = (
    "output_dir",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "per_device_train_batch_size",
    "seed",
    "save_strategy",
    "resume_from_checkpoint",
    "use_cpu",
    "report_to",
)


def _full_parser():
    """Every option: `AgoraCliArguments`, then `AgoraConfig` (all `TrainingArguments` fields and the Agora ones)."""
    from transformers import HfArgumentParser

    from .._cli import CONFIG_HELP, HelpFormatter, dashes_first
    from .config import AgoraConfig

    parser = HfArgumentParser(
        (AgoraCliArguments, AgoraConfig),
        prog="hf-bort agora",
        description="Agora fine-tuning. Every option (`hf-bort agora --help` lists the command's own first).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    return dashes_first(parser)


def parse(argv: list[str]) -> tuple:
    """`(AgoraCliArguments, AgoraConfig)` from command-line arguments (dashed or field-name flags, `--config FILE`)."""
    from .._cli import parse_dataclasses

    return parse_dataclasses(_full_parser(), argv)


def _copy_fields(dtype: type, names) -> list[tuple]:
    hints = typing.get_type_hints(dtype)
    copied = []
    for found in dataclasses.fields(dtype):
        if found.name in names:
            default = {"default": found.default}
            if found.default_factory is not dataclasses.MISSING:
                default = {"default_factory": found.default_factory}
            copied.append((found.name, hints[found.name], field(metadata=found.metadata, **default)))
    return copied


def _short_parser():
    """`hf-bort agora --help`: its own options first (data and models, Agora), then the common Trainer ones."""
    from transformers import HfArgumentParser, TrainingArguments

    from .._cli import CONFIG_HELP, HelpFormatter, dashes_first
    from .config import AgoraConfig

    inherited = {found.name for found in dataclasses.fields(TrainingArguments)}
    own = [found.name for found in dataclasses.fields(AgoraConfig) if found.name not in inherited]
    groups = (
        (
            "data and models (AgoraCliArguments)",
            AgoraCliArguments,
            [f.name for f in dataclasses.fields(AgoraCliArguments)],
        ),
        ("Agora (AgoraConfig)", AgoraConfig, own),
        (
            "training (the most used TrainingArguments; all of them: --help-all)",
            AgoraConfig,
            COMMON_TRAINING_ARGUMENTS,
        ),
    )
    types = []
    for title, dtype, names in groups:
        namespace = {"_argument_group_name": title}
        types.append(
            dataclasses.make_dataclass(title.split()[0].title(), _copy_fields(dtype, names), namespace=namespace)
        )
    parser = HfArgumentParser(
        types,
        prog="hf-bort agora",
        description="Agora fine-tuning: train, relabel samples near dev errors, add them, repeat. Flags take dashes "
        "(--output-dir); the field names (--output_dir) work too.",
        epilog="Every TrainingArguments option is accepted as well: `hf-bort agora --help-all` lists them.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--help-all", action="store_true", help="List every option, TrainingArguments' included.")
    return dashes_first(parser)


def _load(path: str):
    from datasets import load_dataset

    kind = "csv" if path.endswith(".csv") else "json"
    return load_dataset(kind, data_files=path, split="train")


def run(argv: list[str]) -> int:
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .._outputs import check_output_dir
    from .._sources import check_source
    from .._text import check_utf8, read_utf8
    from .trainer import AgoraTrainer, resolve_resume_checkpoint

    cli, config = parse(argv)
    check_output_dir(config.output_dir, "output_dir")  # a file or an unwritable folder: before any model is loaded
    check_source(cli.model_name_or_path, "model_name_or_path")
    check_source(cli.labeller_name_or_path, "labeller_name_or_path")
    resume = resolve_resume_checkpoint(config.resume_from_checkpoint, config.output_dir)  # before any loading
    for option in ("train_file", "dev_file", "test_file", "pool_file"):  # the loaders name neither file nor line
        if getattr(cli, option) is not None and os.path.isfile(getattr(cli, option)):
            check_utf8(getattr(cli, option), option)
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
        pool = [line.strip() for line in read_utf8(cli.pool_file, "pool_file").splitlines() if line.strip()]

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
    from .._cli import add_command

    add_command(
        subparsers,
        "agora",
        help="Agora fine-tuning: train, relabel samples near dev errors, add them, repeat.",
        parser=_full_parser,
        run=_dispatch,
        help_parser=_short_parser,
        help_if_empty=True,
    )


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "--help-all":
        _full_parser().print_help()
        return 0
    return run(argv)
