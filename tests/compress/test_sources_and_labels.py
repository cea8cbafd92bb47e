"""`compress` refuses, before any training, sources and data that would silently give wrong results: a classifier
without its head, labels mixing ids and names, labels only dev/test hold, undecodable files (issue 19)."""

from __future__ import annotations

import csv
import json

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
