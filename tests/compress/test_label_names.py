"""Class names of integer labels (issue 24): from a ClassLabel, a `label_names_column` beside the ids, or
`label_names`; inconsistent names are refused before any work, naming the field."""

from __future__ import annotations

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hf_bort import CompressionConfig
from hf_bort.data import load_task_data
from tiny_tasks import fast_settings


def _data(splits: dict[str, list[tuple[str, int, str]]]) -> DatasetDict:
    return DatasetDict(
        {
            name: Dataset.from_dict(
                {
                    "text": [text for text, _, _ in rows],
                    "label": [label for _, label, _ in rows],
                    "label_text": [name for _, _, name in rows],
                }
            )
            for name, rows in splits.items()
        }
    )


ROWS = [("good fun", 1, "pos"), ("awful", 0, "neg"), ("great", 1, "pos"), ("dull", 0, "neg")]


def _load(dataset, **overrides):
    return load_task_data(CompressionConfig(model="m", dataset=dataset, **fast_settings(**overrides)))


def test_int_labels_with_a_name_column_get_its_names():
    """Used to be ['0', '1']."""
    data = _load(_data({"train": ROWS, "test": ROWS[:2]}), label_names_column="label_text")
    assert data.label_names == ["neg", "pos"]
    assert _load(_data({"train": ROWS})).label_names == ["0", "1"]  # without the column: ids as names


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            {"train": ROWS, "test": [("fine", 1, "positive")]},
            r"`label_names_column` 'label_text' is not consistent with `label_column` 'label': class id 1 is named "
            r"'pos' and 'positive' \(the 'test' split's row 0\)",
        ),
        (
            {"train": [("a", 0, "x"), ("b", 1, "x")]},
            r"`label_names_column` 'label_text' gives the name 'x' to class ids \[0, 1\]",
        ),
        (
            {"train": [("a", 0, "x"), ("b", 2, "z")]},
            r"`label_names_column` 'label_text' names no row of class ids \[1\]",
        ),
    ],
)
def test_inconsistent_name_columns_are_refused(rows, match):
    with pytest.raises(ValueError, match=match):
        _load(_data(rows), label_names_column="label_text")


def test_a_missing_name_column_is_named():
    data = _data({"train": ROWS})
    with pytest.raises(ValueError, match=r"`label_names_column` 'name' is not a column of the 'train' split"):
        _load(data, label_names_column="name")


def test_label_names_list():
    assert _load(_data({"train": ROWS}), label_names=["bad", "good"]).label_names == ["bad", "good"]
    with pytest.raises(ValueError, match=r"`label_names` has 2 names but `label_column` 'label' holds class id 2"):
        _load(_data({"train": [*ROWS, ("meh", 2, "mid")]}), label_names=["bad", "good"])
    with pytest.raises(ValueError, match=r"`label_names` must not repeat a name"):
        CompressionConfig(model="m", dataset="d", label_names=["a", "a"])
    with pytest.raises(ValueError, match=r"Give `label_names_column` or `label_names`, not both"):
        CompressionConfig(model="m", dataset="d", label_names=["a", "b"], label_names_column="n")


def test_names_need_integer_ids_and_no_class_label():
    named = DatasetDict({"train": Dataset.from_dict({"text": ["a", "b"], "label": ["neg", "pos"], "n": ["x", "y"]})})
    with pytest.raises(ValueError, match=r"`label_names_column` names integer class ids, but `label_column`"):
        _load(named, label_names_column="n")
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = {"text": list("abcd"), "label": [0, 1, 0, 1]}
    class_label = DatasetDict({"train": Dataset.from_dict(rows, features=features)})
    assert _load(class_label).label_names == ["neg", "pos"]
    with pytest.raises(ValueError, match=r"is a ClassLabel with names \['neg', 'pos'\]: leave out `label_names`"):
        _load(class_label, label_names=["a", "b"])


def test_the_cli_takes_label_names():
    from hf_bort.compress.cli import parse

    config = parse(
        ["m", "--dataset", "d", "--measure-onnx", "false", "--label-names", "bad", "good", "--allow-weak-teacher"]
    )
    assert config.label_names == ["bad", "good"] and config.allow_weak_teacher
