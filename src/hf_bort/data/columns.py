"""The checked columns of a split: non-empty UTF-8 texts, class labels (ids or names, not both), and the class names
a ClassLabel feature, a names column or `label_names` gives; each error names the split, the column and the field."""

from __future__ import annotations

import re
from typing import Any


def _values(split: Any, name: str, column: str) -> list[Any]:
    """A column as a list; strings that are not UTF-8 (a dataset built from undecodable bytes) are an error naming the
    split and column."""
    try:
        return list(split[column])
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The {name!r} split's {column!r} column holds text that is not valid UTF-8 ({error.reason} at byte "
            f"{error.start}). Save the data as UTF-8."
        ) from None


def _texts(split: Any, name: str, column: str, field_name: str = "text_column") -> list[str]:
    """`column` of one split, checked: present (the error names `field_name`) and non-empty strings in every row."""
    if column not in split.column_names:
        raise ValueError(
            f"`{field_name}` {column!r} is not a column of the {name!r} split (columns: {split.column_names})."
        )
    texts = _values(split, name, column)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"The {name!r} split's {column!r} (`{field_name}`) must hold non-empty strings; row {i} is {text!r}."
            )
    return texts


def _texts_and_labels(split: Any, name: str, text_column: str, label_column: str) -> tuple[list[str], list[Any]]:
    columns = split.column_names
    for column, what in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in columns:
            raise ValueError(f"`{what}` {column!r} is not a column of the {name!r} split (columns: {columns}).")
    if len(split) == 0:
        raise ValueError(f"The {name!r} split is empty.")
    texts, labels = _texts(split, name, text_column), _values(split, name, label_column)
    for i, label in enumerate(labels):
        if label is None or isinstance(label, (bool, float, list, dict)):
            raise ValueError(
                f"The {name!r} split's {label_column!r} must be class ids or names; row {i} is {label!r}."
            )
    return texts, labels


_CLASS_ID = re.compile(r"\s*-?\d+\s*")


def _check_label_kinds(columns: dict[str, tuple[list[str], list[Any]]], label_column: str) -> None:
    """Refuses labels mixing class ids (`0`, `"1"`) and class names (`"pos"`): each would become its own class."""
    ids: dict[str, list[Any]] = {}
    names: dict[str, list[Any]] = {}
    for split, (_, labels) in columns.items():
        for label in labels:
            is_id = isinstance(label, int) or _CLASS_ID.fullmatch(str(label)) is not None
            found = (ids if is_id else names).setdefault(split, [])
            if label not in found:
                found.append(label)
    if ids and names:

        def shown(values: dict[str, list[Any]]) -> str:
            return "; ".join(f"{split}: {sorted(found, key=str)[:5]}" for split, found in values.items())

        raise ValueError(
            f"`label_column` {label_column!r} mixes class ids and class names — ids ({shown(ids)}) and names "
            f"({shown(names)}); each would become a class of its own. Give every label as an id or every label as a "
            "name."
        )


def _label_names(config, raw: dict[str, Any], columns: dict[str, tuple[list[str], list[Any]]]) -> list[str] | None:
    """
    Class names by id for integer labels: from a `ClassLabel` feature (train's, the same in every split), the
    `label_names_column` (one name per id, checked in every split) or `label_names`; None when none is given.
    """
    ints = all(isinstance(label, int) for _, labels in columns.values() for label in labels)
    given = "label_names_column" if config.label_names_column else "label_names" if config.label_names else None
    if given and not ints:
        raise ValueError(
            f"`{given}` names integer class ids, but `label_column` {config.label_column!r} holds class names "
            "already: leave it out."
        )
    features = {split: raw[split].features.get(config.label_column) for split in columns}
    class_labels = {split: list(f.names) for split, f in features.items() if getattr(f, "names", None)}
    names = class_labels.get(config.train_split)
    differing = sorted(split for split, found in class_labels.items() if found != names)
    if names and differing:
        raise ValueError(
            f"The ClassLabel names of `label_column` {config.label_column!r} differ between splits: "
            f"{config.train_split!r} has {names}, {differing[0]!r} has {class_labels[differing[0]]}."
        )
    if names and given:
        raise ValueError(
            f"`label_column` {config.label_column!r} is a ClassLabel with names {names}: leave out `{given}`."
        )
    if config.label_names_column:
        return _names_from_column(raw, columns, config.label_names_column, config.label_column)
    if config.label_names:
        largest = max(label for _, labels in columns.values() for label in labels)
        if largest >= len(config.label_names):
            raise ValueError(
                f"`label_names` has {len(config.label_names)} names but `label_column` {config.label_column!r} holds "
                f"class id {largest}: give a name for every id 0..{largest}."
            )
        return list(config.label_names)
    return names or None


def _names_from_column(raw: dict[str, Any], columns: dict[str, Any], name_column: str, label_column: str) -> list[str]:
    """{id: name} read from `name_column` beside the ids; an id with two names, a name of two ids or a gap refused."""
    by_id: dict[int, str] = {}
    for split, (_, labels) in columns.items():
        if name_column not in raw[split].column_names:
            raise ValueError(
                f"`label_names_column` {name_column!r} is not a column of the {split!r} split "
                f"(columns: {raw[split].column_names})."
            )
        for row, (label, name) in enumerate(zip(labels, _values(raw[split], split, name_column), strict=True)):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(
                    f"The {split!r} split's `label_names_column` {name_column!r} must hold non-empty strings; row "
                    f"{row} is {name!r}."
                )
            known = by_id.setdefault(label, name)
            if known != name:
                raise ValueError(
                    f"`label_names_column` {name_column!r} is not consistent with `label_column` {label_column!r}: "
                    f"class id {label} is named {known!r} and {name!r} (the {split!r} split's row {row})."
                )
    ids_of: dict[str, list[int]] = {}
    for label, name in by_id.items():
        ids_of.setdefault(name, []).append(label)
    shared = {name: sorted(ids) for name, ids in ids_of.items() if len(ids) > 1}
    if shared:
        name, ids = next(iter(shared.items()))
        raise ValueError(
            f"`label_names_column` {name_column!r} gives the name {name!r} to class ids {ids}: one name per class."
        )
    missing = [i for i in range(max(by_id) + 1) if i not in by_id]
    if missing:
        raise ValueError(
            f"`label_names_column` {name_column!r} names no row of class ids {missing[:5]} (ids go 0..{max(by_id)}): "
            "give `label_names` instead, with a name for every id."
        )
    return [by_id[i] for i in range(len(by_id))]


def _generic_names(label2id: dict[str, int]) -> bool:
    """transformers' placeholder names (LABEL_0, LABEL_1, …)."""
    return all(name == f"LABEL_{i}" for name, i in label2id.items())
