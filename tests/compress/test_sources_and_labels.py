"""`compress` refuses, before any training, sources and data that would silently give wrong results: a classifier
without its head, labels mixing ids and names, labels only dev/test hold, undecodable files (issue 19)."""

from __future__ import annotations

import csv
import json
import re

import pytest
from transformers import BertModel

from hf_bort import CompressionConfig, compress
from hf_bort.compress import recipe
from hf_bort.ose import OSESearch
from tiny_tasks import fast_settings


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched"))


def _csv(path, rows, fields=("text", "label")):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _config(model, dataset, out, **overrides):
    return CompressionConfig(model=str(model), dataset=dataset, output_dir=str(out), **fast_settings(**overrides))


def test_a_classifier_config_without_classifier_weights_is_refused(tmp_path, tiny_source, data_dir, no_training):
    """Used to be the teacher with a randomly initialised head (rc 0)."""
    headless = tmp_path / "headless"
    BertModel.from_pretrained(tiny_source).save_pretrained(headless)
    config = json.loads((headless / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (headless / "config.json").write_text(json.dumps(config))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_source / name).is_file():
            (headless / name).write_bytes((tiny_source / name).read_bytes())
    with pytest.raises(ValueError, match=r"model=.*headless.* has no trained weights for classifier.bias, classifier"):
        compress(_config(headless, str(data_dir), tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def _rows(labels):
    return [{"text": f"text number {i} is good", "label": label} for i, label in enumerate(labels)]


def _task_data(dataset, **overrides):
    from hf_bort.data import load_task_data

    return load_task_data(CompressionConfig(model="m", dataset=dataset, **fast_settings(**overrides)))


def test_labels_mixing_ids_and_names_are_refused(tmp_path, tiny_source, no_training):
    """0, 1 and 'pos' used to become three classes."""
    _csv(tmp_path / "data" / "train.csv", _rows([0, 1, "pos", 0, 1, "pos"]))
    with pytest.raises(ValueError, match=r"`label_column` 'label' mixes class ids and class names .*'0', '1'.*'pos'"):
        compress(_config(tiny_source, str(tmp_path / "data"), tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    from datasets import Dataset, DatasetDict

    across = DatasetDict(  # ids in train, a name in test (a JSON file with mixed types reads the same)
        {"train": Dataset.from_list(_rows([0, 1, 0, 1])), "test": Dataset.from_list(_rows(["pos", "neg"]))}
    )
    with pytest.raises(ValueError, match=r"mixes class ids and class names — ids \(train: \[0, 1\]\) and names"):
        _task_data(across)


@pytest.mark.parametrize(
    ("train", "test", "shown"),
    [([0, 1, 0, 1], [0, 2], "['2']"), (["neg", "pos"] * 2, ["neutral", "pos"], "['neutral']")],
)
def test_labels_only_test_holds_are_refused_for_a_new_head(tmp_path, train, test, shown):
    """A label only test held silently grew the pretrained source's new head by one class."""
    from datasets import Dataset, DatasetDict

    data = DatasetDict({"train": Dataset.from_list(_rows(train)), "test": Dataset.from_list(_rows(test))})
    message = f"The 'test' split's `label_column` 'label' holds labels {shown} that the 'train' split never has"
    with pytest.raises(ValueError, match=re.escape(message)):
        _task_data(data)


def test_a_class_train_never_shows_is_a_logged_note_when_the_classes_are_fixed(caplog):
    """Classes named by the dataset (ClassLabel): the head keeps them, a warning and a report note say it."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos", "neutral"])})
    data = DatasetDict(
        {
            "train": Dataset.from_list(_rows([0, 1, 0, 1]), features=features),
            "test": Dataset.from_list(_rows([2, 1]), features=features),
        }
    )
    with caplog.at_level("WARNING", logger="hf_bort.data"):
        task = _task_data(data)
    assert task.num_labels == 3
    assert "test labels ['neutral'] never occur in train: the student is never trained on them" in task.notes
    assert "test labels ['neutral'] never occur in train" in caplog.text


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("train.csv", b"text,label\ngood film,0\nbad \xff film,1\n"),
        ("train.jsonl", b'{"text": "good film", "label": 0}\n{"text": "bad \xff film", "label": 1}\n'),
    ],
)
def test_a_dataset_file_that_is_not_utf8_is_named_with_its_line(tmp_path, tiny_source, no_training, name, content):
    """Used to fail with "'utf-8' codec can't decode byte 0xff" naming neither file nor line (or only the file)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(content)
    message = rf"`dataset` split 'train': '.*{name}' is not valid UTF-8: line \d, byte 5 \(0xff: invalid start byte\)"
    if name.endswith(".jsonl"):
        message = message.replace(r"line \d, byte 5", "line 2, byte 15")
    else:
        message = message.replace(r"line \d", "line 3")
    with pytest.raises(ValueError, match=message):
        compress(_config(tiny_source, str(data), tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_read_utf8_names_the_line_and_byte(tmp_path):
    from hf_bort._text import read_utf8

    path = tmp_path / "texts.txt"
    path.write_bytes("one\ntwo é\nthr\xe9e\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"--texts: '.*texts.txt' is not valid UTF-8: line 2, byte 5 \(0xe9"):
        read_utf8(path, "--texts")
    path.write_bytes("one\ntwo é\n".encode())
    assert read_utf8(path, "--texts") == "one\ntwo é\n"
