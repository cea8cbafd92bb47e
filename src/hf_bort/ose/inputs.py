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


def labelled_rows(
    dataset: Any, text_column: str, label_column: str, name: str, text_pair_column: str | None = None
) -> list[tuple[Any, int]]:
    """
    (text, integer label) rows of a datasets.Dataset — ((text, text_pair), label) with `text_pair_column`; errors
    name the dataset and the column.
    """
    names = getattr(dataset, "column_names", None)
    if names is None or isinstance(names, dict):
        raise TypeError(f"`{name}` must be one datasets.Dataset split with text and label columns.")
    for column in (text_column, label_column, *([text_pair_column] if text_pair_column else [])):
        if column not in names:
            raise ValueError(f"`{name}` has no column {column!r} (columns: {names}).")
    texts: list[Any] = texts_of(dataset, text_column)
    if text_pair_column:
        texts = list(zip(texts, texts_of(dataset, text_pair_column), strict=True))
    labels = list(dataset[label_column])
    bad = [i for i, label in enumerate(labels) if isinstance(label, bool) or not isinstance(label, int)]
    if bad:
        raise ValueError(f"`{name}` labels must be integer class ids; row {bad[0]} has {labels[bad[0]]!r}.")
    if not texts:
        raise ValueError(f"`{name}` is empty.")
    return list(zip(texts, labels, strict=True))


IGNORE_INDEX = -100  # the label transformers' classification losses skip


def check_label(value: Any, num_labels: int, where: str, *, allow_ignore: bool = False) -> None:
    """
    Raise a ValueError naming `where` (e.g. "train_dataset row 3, column 'label'") unless `value` is a class id in
    [0, `num_labels`) (or -100, which the loss skips, when `allow_ignore`). A list or tensor (token classification)
    is checked element by element; float labels (regression, multi-label targets) are not class ids and are left as
    they are.
    """
    import torch

    if value is None:
        raise ValueError(f"{where} has no label.")
    if isinstance(value, bool):
        raise ValueError(f"{where} holds {value!r}; expected an integer class id in [0, {num_labels}).")
    tensor = torch.as_tensor(value)
    if tensor.is_floating_point() or tensor.is_complex():
        return
    flat = tensor.reshape(-1)
    valid = (flat >= 0) & (flat < num_labels)
    if allow_ignore:
        valid |= flat == IGNORE_INDEX
    if not bool(valid.all()):
        bad = int(flat[~valid][0])
        raise ValueError(
            f"{where} holds the label {bad}, expected a class id in [0, {num_labels}) "
            f"(the model has num_labels={num_labels}"
            + (", and -100 marks an ignored position)." if allow_ignore else ").")
        )


def check_class_labels(dataset: Any, num_labels: int, name: str, *, allow_ignore: bool = True) -> None:
    """
    Check every label of `dataset` (column `labels`, else `label`; a `datasets.Dataset` or a sequence of dict rows)
    with [`check_label`] before training, so an out-of-range class id fails here, naming the dataset, row, column and
    value, instead of as an `IndexError` mid-training. A dataset without a label column is left alone.
    """
    if dataset is None or isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        return  # regression (one output) or no classifier: labels are not class ids
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        column = "labels" if "labels" in columns else "label" if "label" in columns else None
        if column is None:
            return
        for row, value in enumerate(dataset[column]):
            check_label(value, num_labels, f"{name} row {row}, column {column!r},", allow_ignore=allow_ignore)
        return
    try:
        size = len(dataset)
    except TypeError:
        return  # an iterable dataset: rows are only seen while training
    for row in range(size):
        item = dataset[row]
        if not isinstance(item, dict):
            return
        column = "labels" if item.get("labels") is not None else "label" if "label" in item else None
        if column is not None:
            check_label(item[column], num_labels, f"{name} row {row}, column {column!r},", allow_ignore=allow_ignore)
