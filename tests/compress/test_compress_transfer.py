"""`compress` with a transfer set (`unlabelled_dataset`) and the `augment` stage (`augment_budget`)."""

from __future__ import annotations

import csv
import json

import pytest
from datasets import Dataset

from hf_bort import CompressionConfig, compress
from hf_bort.compress import augment, recipe
from tiny_tasks import fast_settings, make_rows

GIVEN = "D1-A2-H24-I16-d8"  # a given shape: no search (the search does not read the transfer set)


def _config(tiny_source, data_dir, out, **overrides):
    settings = fast_settings(candidate=GIVEN, reload_check=False, **overrides)
    return CompressionConfig(model=str(tiny_source), dataset=str(data_dir), output_dir=str(out), **settings)


def _transfer_file(tmp_path, data_dir, n: int = 40, column: str = "text"):
    """`n` fresh texts plus two exact copies of test texts (to be removed) in a CSV file without labels."""
    texts = [row["text"] + " again" for row in make_rows(n, seed=7)]
    with open(data_dir / "test.csv") as handle:
        test_texts = [row["text"] for row in csv.DictReader(handle)][:2]
    path = tmp_path / "pool.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[column])
        writer.writeheader()
        writer.writerows({column: text} for text in texts + test_texts)
    return path


def _counting_finetune(monkeypatch) -> list[int]:
    """Records how many rows each `recipe.finetune` call trained on (the Trainer's dataset)."""
    seen: list[int] = []
    real = recipe.finetune

    def counting(model, train_dataset, *args, **kwargs):
        seen.append(len(train_dataset))
        return real(model, train_dataset, *args, **kwargs)

    monkeypatch.setattr(recipe, "finetune", counting)
    return seen


def test_the_transfer_set_reaches_both_distillations(tmp_path, tiny_source, data_dir, monkeypatch):
    pool = _transfer_file(tmp_path, data_dir, column="sentence")
    seen = _counting_finetune(monkeypatch)
    config = _config(
        tiny_source, data_dir, tmp_path / "out", unlabelled_dataset=str(pool), unlabelled_text_column="sentence"
    )
    report = compress(config).report
    transfer = report["data"]["transfer"]
    assert transfer == {
        "split": "train",
        "column": "sentence",
        "rows_given": 42,
        "removed_duplicates_of_dev_or_test": 2,
        "rows": 40,
    }
    assert report["data"]["sizes"]["transfer"] == 40
    train = report["data"]["sizes"]["train"]
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["stages"]["distill"]["texts"] == {"train": train, "transfer": 40}
    rows = report["student"]["task_distillation"]["rows"]
    assert rows == {"gold": train, "transfer": 40, "augmented": 0}
    assert seen == [train, train + 40]  # the source's fine-tuning on gold rows; task distillation on both
    assert report["augment"]["skipped"] == "augment_budget=0"
    assert json.loads((tmp_path / "out" / "compression_config.json").read_text())["unlabelled_dataset"] == str(pool)


def test_the_transfer_set_is_part_of_the_data_fingerprint(tmp_path, tiny_source, data_dir):
    from hf_bort.compress.tasks import task_for

    fingerprints = []
    for extra in ({}, {"unlabelled_dataset": Dataset.from_dict({"text": ["one more text", "and another"]})}):
        task = task_for(_config(tiny_source, data_dir, tmp_path / "out", **extra))
        task.load()
        fingerprints.append(task.data.fingerprint())
    assert fingerprints[0] != fingerprints[1]


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"unlabelled_dataset": "{tmp}/missing.csv"}, FileNotFoundError, "`unlabelled_dataset`"),
        ({"unlabelled_dataset": "{pool}", "unlabelled_text_column": "body"}, ValueError, "`unlabelled_text_column`"),
        ({"unlabelled_dataset": Dataset.from_dict({"text": ["fine", " "]})}, ValueError, "row 1"),
        ({"unlabelled_dataset": Dataset.from_dict({"text": []})}, ValueError, "`unlabelled_dataset` is empty"),
    ],
)
def test_bad_transfer_data_is_refused_before_any_work(tmp_path, tiny_source, data_dir, overrides, error, match):
    pool = _transfer_file(tmp_path, data_dir)
    overrides = {
        key: value.format(tmp=tmp_path, pool=pool) if isinstance(value, str) else value
        for key, value in overrides.items()
    }
    with pytest.raises(error, match=match):
        compress(_config(tiny_source, data_dir, tmp_path / "out", **overrides))
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"augment_budget": -1}, "`augment_budget`"),
        ({"augment_budget": 1.5}, "`augment_budget`"),
        ({"unlabelled_text_column": "text"}, "without `unlabelled_dataset`"),
        ({"unlabelled_dataset": 3}, "`unlabelled_dataset` must be"),
        ({"unlabelled_dataset": " "}, "`unlabelled_dataset` must be"),
    ],
)
def test_bad_settings_are_refused(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, **overrides)


def test_augmentation_is_classification_only(tmp_path):
    pytest.importorskip("sentence_transformers")
    with pytest.raises(ValueError, match="augment_budget"):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, task="feature-extraction", augment_budget=4)


def test_the_augment_stage_stays_within_its_budget_and_resumes(tmp_path, tiny_source, data_dir, monkeypatch):
    seen = _counting_finetune(monkeypatch)
    config = _config(tiny_source, data_dir, tmp_path / "out", augment_budget=8, seed=1)
    report = compress(config).report
    record = report["augment"]
    assert 0 < record["teacher_calls"] <= 8 and record["rows_added"] == record["teacher_calls"]
    assert record["errors"]["error_rows"] > 0 and record["candidates_made"] >= record["rows_added"]
    # the tiny source is a bare encoder: no masked-LM head, so substitution by embedding neighbours, and it says so
    assert "teacher's input-embedding space" in record["candidates_from"]
    assert "no masked-LM head" in record["candidates_from"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "augment" / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == record["rows_added"] and all(len(row["teacher_logits"]) == 2 for row in rows)
    train = report["data"]["sizes"]["train"]
    assert report["student"]["task_distillation"]["rows"] == {"gold": train, "transfer": 0, "augmented": len(rows)}
    assert seen[-1] == train + len(rows)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the recorded augment stage ran again")

    monkeypatch.setattr(augment, "augment", must_not_run)
    progress = tmp_path / "out" / "progress.json"
    state = json.loads(progress.read_text())
    del state["stages"]["task"], state["stages"]["latency"], state["stages"]["test"]  # killed after `augment`
    progress.write_text(json.dumps(state))
    again = compress(config).report
    assert again["augment"] == record
    assert again["student"]["task_distillation"]["rows"]["augmented"] == len(rows)


def test_augmentation_takes_its_candidates_from_the_transfer_set(tmp_path, tiny_source, data_dir):
    pool = _transfer_file(tmp_path, data_dir)
    config = _config(tiny_source, data_dir, tmp_path / "out", augment_budget=6, unlabelled_dataset=str(pool))
    report = compress(config).report
    record = report["augment"]
    assert record["candidates_from"] == "transfer set (unlabelled_dataset)" and record["candidates_made"] == 40
    assert record["teacher_calls"] <= 6
    pool_texts = {row["text"] + " again" for row in make_rows(40, seed=7)}
    rows = [json.loads(line) for line in (tmp_path / "out" / "augment" / "rows.jsonl").read_text().splitlines()]
    assert rows and all(row["text"] in pool_texts for row in rows)
    assert report["student"]["task_distillation"]["rows"]["augmented"] == len(rows)
    assert report["student"]["task_distillation"]["rows"]["transfer"] == 40


def test_the_embedding_task_distils_on_the_transfer_texts(tmp_path, data_dir):
    pytest.importorskip("sentence_transformers")
    from tiny_sentence_transformers import tiny_sentence_transformer

    source = tiny_sentence_transformer(tmp_path / "st")
    pool = _transfer_file(tmp_path, data_dir)
    config = CompressionConfig(
        model=str(source),
        dataset=str(data_dir),
        output_dir=str(tmp_path / "out"),
        task="feature-extraction",
        unlabelled_dataset=str(pool),
        **fast_settings(candidate=GIVEN, reload_check=False),
    )
    report = compress(config).report
    train = report["data"]["sizes"]["train"]
    assert report["data"]["transfer"]["rows"] == 40
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["stages"]["distill"]["texts"] == {"train": train, "transfer": 40}
    assert report["student"]["embedding_distillation"]["texts"] == {"train": train, "transfer": 40}
    # every text is seen each epoch: (96 + 40) / 16 batches × 2 epochs
    assert report["student"]["embedding_distillation"]["steps"] == 2 * -(-(train + 40) // 16)
    assert report["augment"]["skipped"] == "classification only"
