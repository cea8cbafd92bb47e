"""The search's inputs: texts and labelled rows from a `datasets.Dataset` or a list, checked with clear errors."""

from __future__ import annotations

from typing import Any


def texts_of(dataset: Any, column: str) -> list[str]:
    if dataset is None:
        raise ValueError("`text_dataset` is required: a datasets.Dataset with a text column or a list of strings.")
    if isinstance(dataset, (list, tuple)):
        texts = list(dataset)
    else:
        names = getattr(dataset, "column_names", None)
        if names is None:
            raise TypeError(f"`text_dataset` must be a datasets.Dataset or a list of strings, got {type(dataset)}.")
        if isinstance(names, dict):
            raise TypeError("`text_dataset` is a DatasetDict: pass one split, e.g. dataset['train'].")
        if column not in names:
            raise ValueError(f"`text_column` {column!r} is not a column of `text_dataset` (columns: {names}).")
        texts = list(dataset[column])
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"`text_dataset` must hold non-empty strings; entry {bad[0]} is {texts[bad[0]]!r}.")
    return texts


def labelled_rows(dataset: Any, text_column: str, label_column: str, name: str) -> list[tuple[str, int]]:
    """(text, integer label) rows of a datasets.Dataset; errors name the dataset and the column."""
    names = getattr(dataset, "column_names", None)
    if names is None or isinstance(names, dict):
        raise TypeError(f"`{name}` must be one datasets.Dataset split with text and label columns.")
    for column in (text_column, label_column):
        if column not in names:
            raise ValueError(f"`{name}` has no column {column!r} (columns: {names}).")
    texts = texts_of(dataset, text_column)
    labels = list(dataset[label_column])
    bad = [i for i, label in enumerate(labels) if isinstance(label, bool) or not isinstance(label, int)]
    if bad:
        raise ValueError(f"`{name}` labels must be integer class ids; row {bad[0]} has {labels[bad[0]]!r}.")
    if not texts:
        raise ValueError(f"`{name}` is empty.")
    return list(zip(texts, labels, strict=True))
