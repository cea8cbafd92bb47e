"""The splits `compress` works on ([`TaskData`]): labelled text (or text pairs), text only for embeddings, and the
transfer set, checked before any work; a dev split carved from train when none is given."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from .columns import _check_label_kinds, _generic_names, _label_names, _texts, _texts_and_labels, _values
from .sources import _load_raw

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """
    The splits `compress` works on (columns `text` and integer `label`, and `text_pair` for text pairs), with what
    was done to get them.
    """

    train: Any
    validation: Any
    test: Any | None
    label_names: list[str]
    validation_carved: bool = False
    notes: list[str] = field(default_factory=list)
    #: The transfer set (`unlabelled_dataset`): a `text`-only Dataset, or None (see [`load_transfer_texts`]).
    transfer: Any | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.train), "validation": len(self.validation)}
        if self.test is not None:
            out["test"] = len(self.test)
        if self.transfer is not None:
            out["transfer"] = len(self.transfer)
        return out

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in ("train", "validation", "test"):
            split = getattr(self, name)
            if split is not None:
                labels = list(split["label"]) if "label" in split.column_names else None
                entry = [name, list(split["text"]), labels]
                if "text_pair" in split.column_names:  # pairs: the second texts too (a data set of their own)
                    entry.append(list(split["text_pair"]))
                digest.update(json.dumps(entry).encode())
        digest.update(json.dumps(self.label_names).encode())
        if self.transfer is not None:  # absent: the fingerprint of runs without a transfer set is unchanged
            digest.update(json.dumps(["transfer", list(self.transfer["text"])]).encode())
        return digest.hexdigest()[:16]


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices (train, dev): about `fraction` of each class goes to dev (at least one per class of ≥ 2 rows)."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train, dev = [], []
    for label in sorted(by_class):
        rows = by_class[label][:]
        rng.shuffle(rows)
        take = round(len(rows) * fraction)
        take = max(1 if len(rows) >= 2 else 0, min(take, len(rows) - 1))
        dev.extend(rows[:take])
        train.extend(rows[take:])
    return sorted(train), sorted(dev)


def load_task_data(
    config, model_label2id: dict[str, int] | None = None, model_num_labels: int | None = None
) -> TaskData:
    """
    The train / dev / test splits of `config.dataset` as `text` + integer `label` columns (and `text_pair` with
    `config.text_pair_column`), checked before any work: columns exist, splits are non-empty, train has at least
    two classes, and every label fits the source classifier's head (`model_num_labels`, names mapped through
    `model_label2id` when the head has real names). Without a dev split one is carved from train (seeded,
    stratified), and a note says so.
    """
    import datasets

    raw = _load_raw(config.dataset, config.seed)
    if config.train_split not in raw:
        raise ValueError(
            f"`train_split` {config.train_split!r} is not a split of the dataset (splits: {sorted(raw)})."
        )
    notes: list[str] = []
    columns = {}
    pair_column = getattr(config, "text_pair_column", None)
    pairs: dict[str, list[str]] = {}  # the second texts of text pairs, by split (checked in every split)
    for name in (config.train_split, config.validation_split, config.test_split):
        if name in raw:
            columns[name] = _texts_and_labels(raw[name], name, config.text_column, config.label_column)
            if pair_column is not None:
                pairs[name] = _texts(raw[name], name, pair_column, "text_pair_column")
    train_texts, train_labels = columns[config.train_split]
    _check_label_kinds(columns, config.label_column)
    names = _label_names(config, raw, columns)
    key = int
    all_labels = [label for _, labels in columns.values() for label in labels]
    # A pretrained encoder's new head gets the classes train holds: a label only dev or test hold is refused (the
    # student could never learn it); a source classifier's head fixes the classes itself.
    class_labels = all_labels if model_num_labels is not None else train_labels
    if names is None:
        if all(isinstance(label, int) for label in all_labels):
            values = sorted(set(all_labels))
            if values[0] < 0:
                raise ValueError(f"`label_column` {config.label_column!r} holds a negative class id {values[0]}.")
            if model_label2id and not _generic_names(model_label2id):
                names = [name for name, _ in sorted(model_label2id.items(), key=lambda item: item[1])]
            else:
                names = [str(i) for i in range(max(class_labels) + 1)]
            to_id = {value: value for value in values if value < len(names) or model_num_labels is not None}
        else:
            key = str
            values = sorted({str(label) for label in class_labels})
            if model_label2id and not _generic_names(model_label2id):
                unknown = [value for value in values if value not in model_label2id]
                if unknown:
                    raise ValueError(
                        f"Labels {unknown[:5]} are not labels of the source classifier "
                        f"(its label2id: {sorted(model_label2id)})."
                    )
                to_id = {value: model_label2id[value] for value in values}
                names = [name for name, _ in sorted(model_label2id.items(), key=lambda item: item[1])]
            else:
                to_id = {value: i for i, value in enumerate(values)}
                names = values
            notes.append(f"string labels mapped to ids: {to_id}")
    else:
        to_id = {i: i for i in range(len(names))}

    def ids(split: str, labels: list[Any]) -> list[int]:
        unknown = sorted({str(label) for label in labels if key(label) not in to_id})
        if unknown and split != config.train_split and model_num_labels is None:
            raise ValueError(
                f"The {split!r} split's `label_column` {config.label_column!r} holds labels {unknown[:5]} that the "
                f"{config.train_split!r} split never has (train's classes: {names}): the source's new head would "
                "grow a class the student never learns. Drop those rows or add training examples of them."
            )
        if unknown:
            raise ValueError(
                f"The {split!r} split's `label_column` {config.label_column!r} holds labels {unknown[:5]} outside "
                f"{names}."
            )
        return [to_id[key(label)] for label in labels]

    converted = {name: (texts, ids(name, labels)) for name, (texts, labels) in columns.items()}
    train_ids = converted[config.train_split][1]
    if len(set(train_ids)) < 2:
        raise ValueError(
            f"The {config.train_split!r} split has a single class ({names[train_ids[0]]!r}): classification needs "
            "at least two."
        )
    num_labels = len(names)
    if model_num_labels is not None:
        too_big = sorted({label for _, labels in converted.values() for label in labels if label >= model_num_labels})
        if too_big:
            raise ValueError(
                f"Labels {too_big[:5]} do not fit the source classifier's {model_num_labels} outputs (ids 0.."
                f"{model_num_labels - 1}): fine-tune from the pretrained encoder instead, or remap the labels."
            )
        num_labels = model_num_labels
        if len(names) < num_labels:
            names = names + [str(i) for i in range(len(names), num_labels)]

    def make(split: str):
        texts, labels = converted[split]
        second = {"text_pair": pairs[split]} if split in pairs else {}
        return datasets.Dataset.from_dict({"text": texts, **second, "label": labels})

    train = make(config.train_split)
    carved = False
    if config.validation_split in converted:
        validation = make(config.validation_split)
    else:
        kept, dev = stratified_split(list(train["label"]), config.validation_fraction, config.seed)
        if not dev:
            raise ValueError("No dev split was given and train is too small to carve one.")
        validation, train = train.select(dev), train.select(kept)
        carved = True
        notes.append(
            f"no {config.validation_split!r} split: carved {len(validation)} rows ({config.validation_fraction:.0%}, "
            f"stratified, seed {config.seed}) from {config.train_split!r} as the dev split"
        )
        logger.warning(notes[-1])
    test = make(config.test_split) if config.test_split in converted else None
    if test is None:
        notes.append(f"no {config.test_split!r} split: no test metrics")
    for split_name, split in (("dev", validation), ("test", test)):
        missing_in_train = sorted(set(split["label"]) - set(train["label"])) if split is not None else []
        if missing_in_train:  # classes the head has (named by the data or the source) but train never shows
            notes.append(
                f"{split_name} labels {[names[i] for i in missing_in_train]} never occur in train: the student is "
                "never trained on them"
            )
            logger.warning(notes[-1])
    return TaskData(
        train=train,
        validation=validation,
        test=test,
        label_names=names[: max(num_labels, len(names))],
        validation_carved=carved,
        notes=notes,
    )


def load_text_data(config) -> TaskData:
    """
    The train / dev / test splits of `config.dataset` as a `text` column only (labels are not read), for
    `task="feature-extraction"`: the text column must exist and hold non-empty strings in every split. Without a
    dev split one is carved from train (seeded shuffle, `validation_fraction`), and a note says so.
    """
    import datasets

    raw = _load_raw(config.dataset, config.seed)
    if config.train_split not in raw:
        raise ValueError(
            f"`train_split` {config.train_split!r} is not a split of the dataset (splits: {sorted(raw)})."
        )
    texts = {}
    for name in (config.train_split, config.validation_split, config.test_split):
        if name not in raw:
            continue
        split = raw[name]
        if config.text_column not in split.column_names:
            raise ValueError(
                f"`text_column` {config.text_column!r} is not a column of the {name!r} split "
                f"(columns: {split.column_names})."
            )
        if len(split) == 0:
            raise ValueError(f"The {name!r} split is empty.")
        values = _values(split, name, config.text_column)
        for i, text in enumerate(values):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"The {name!r} split's {config.text_column!r} must hold non-empty strings; row {i} is {text!r}."
                )
        texts[name] = values
    notes: list[str] = []

    def make(values: list[str]):
        return datasets.Dataset.from_dict({"text": values})

    train = make(texts[config.train_split])
    carved = False
    if config.validation_split in texts:
        validation = make(texts[config.validation_split])
    else:
        order = list(range(len(train)))
        random.Random(config.seed).shuffle(order)
        take = round(len(order) * config.validation_fraction)
        if take < 3 or take >= len(order):
            raise ValueError("No dev split was given and train is too small to carve one of at least 3 texts.")
        validation, train = train.select(sorted(order[:take])), train.select(sorted(order[take:]))
        carved = True
        notes.append(
            f"no {config.validation_split!r} split: carved {len(validation)} texts ({config.validation_fraction:.0%}, "
            f"seed {config.seed}) from {config.train_split!r} as the dev split"
        )
        logger.warning(notes[-1])
    test = make(texts[config.test_split]) if config.test_split in texts else None
    if test is None:
        notes.append(f"no {config.test_split!r} split: no test agreement")
    return TaskData(
        train=train, validation=validation, test=test, label_names=[], validation_carved=carved, notes=notes
    )


def load_transfer_texts(config, data: TaskData) -> dict[str, Any] | None:
    """
    The transfer set `config.unlabelled_dataset` (texts only, same forms as `dataset`; its `train_split`, or the one
    file or Dataset given) from column `config.unlabelled_text_column` (default `text_column`), checked before any
    work: the column exists, every row is a non-empty string. Exact duplicates of dev or test texts are removed (the
    transfer set must not hold the texts choices and the final numbers are measured on). Sets `data.transfer` (a
    `text`-only Dataset) and returns the data record's `transfer` entry; None without a transfer set.
    """
    import datasets

    if config.unlabelled_dataset is None:
        return None
    column = config.unlabelled_text_column or config.text_column
    try:
        raw = _load_raw(config.unlabelled_dataset, config.seed)
    except (ValueError, TypeError, FileNotFoundError) as error:  # the loader names `dataset`: name this field
        raise type(error)(str(error).replace("`dataset`", "`unlabelled_dataset`")) from error
    split = config.train_split if config.train_split in raw else ("train" if "train" in raw else None)
    if split is None:
        raise ValueError(
            f"`unlabelled_dataset` has no {config.train_split!r} (`train_split`) split to take texts from (splits: "
            f"{sorted(raw)})."
        )
    table = raw[split]
    if column not in table.column_names:
        raise ValueError(
            f"`unlabelled_text_column` {column!r} is not a column of `unlabelled_dataset` (columns: "
            f"{table.column_names})."
        )
    texts = _values(table, f"unlabelled_dataset {split}", column)
    if not texts:
        raise ValueError("`unlabelled_dataset` is empty.")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"`unlabelled_dataset` column {column!r} must hold non-empty strings; row {i} is {text!r}."
            )
    held_out = set(data.validation["text"]) | (set(data.test["text"]) if data.test is not None else set())
    kept = [text for text in texts if text not in held_out]
    if not kept:
        raise ValueError("Every text of `unlabelled_dataset` is also a dev or test text: no transfer set is left.")
    data.transfer = datasets.Dataset.from_dict({"text": kept})
    return {
        "split": split,
        "column": column,
        "rows_given": len(texts),
        "removed_duplicates_of_dev_or_test": len(texts) - len(kept),
        "rows": len(kept),
    }
