"""`compress` with a transfer set (`unlabelled_dataset`) and the `augment` stage after task distillation (`augment`,
`augment_budget`, `augment_epochs`; its dev gate: `compress/augment_gate.py`)."""

from __future__ import annotations

import csv
import json

import pytest
from datasets import Dataset

from hf_bort import CompressionConfig, compress
from hf_bort.compress import augment, augment_gate, recipe
from hf_bort.compress.run import STAGES
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


def _must_not_run(*args, **kwargs):
    raise AssertionError("the teacher was asked to label augmentation rows")


def test_the_transfer_set_reaches_both_distillations(tmp_path, tiny_source, data_dir, monkeypatch):
    pool = _transfer_file(tmp_path, data_dir, column="sentence")
    seen = _counting_finetune(monkeypatch)
    monkeypatch.setattr(augment, "augment", _must_not_run)  # augment="off" (fast_settings): no teacher calls
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
    assert rows == {"gold": train, "transfer": 40}
    assert seen == [train, train + 40]  # the source's fine-tuning on gold rows; task distillation on both
    assert report["augment"] == {"skipped": "augment='off'", "teacher_calls": 0, "rows_added": 0}
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
        ({"unlabelled_text_column": "text"}, "without `unlabelled_dataset`"),
        ({"unlabelled_dataset": 3}, "`unlabelled_dataset` must be"),
        ({"unlabelled_dataset": " "}, "`unlabelled_dataset` must be"),
    ],
)
def test_bad_settings_are_refused(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        CompressionConfig(model="m", dataset="d", measure_onnx=False, **overrides)


def _weights(folder) -> bytes:
    return (folder / "model.safetensors").read_bytes()


def _spy_start(monkeypatch) -> list[bytes]:
    """The task student's weights as the `augment` stage copies them (its starting point)."""
    seen: list[bytes] = []
    real = augment.start_copy

    def spy(out):
        kept = real(out)
        seen.append(_weights(kept))
        return kept

    monkeypatch.setattr(augment, "start_copy", spy)
    return seen


def _force_gain(monkeypatch, gain: float) -> None:
    """The continued student's dev `macro_f1` set to the task student's + `gain`; the real gate decides."""
    real = augment_gate.decide

    def forced(before, after, **kwargs):
        return real(before, {**after, "macro_f1": before["macro_f1"] + gain}, **kwargs)

    monkeypatch.setattr(augment_gate, "decide", forced)


def test_auto_keeps_the_task_student_when_the_round_does_not_pass_the_gate_and_resumes(
    tmp_path, tiny_source, data_dir, monkeypatch
):
    out = tmp_path / "out"
    config = _config(tiny_source, data_dir, out, augment="auto", seed=1)
    seen = _counting_finetune(monkeypatch)
    started = _spy_start(monkeypatch)
    _force_gain(monkeypatch, 0.0)  # no gain: not more than one standard error
    report = compress(config).report
    record = report["augment"]
    train = report["data"]["sizes"]["train"]
    assert record["budget"] == 64 and record["budget_from"].startswith("default")  # max(64, 0.1 × 96 rows)
    assert 0 < record["teacher_calls"] <= 64 and record["rows_added"] == record["teacher_calls"]
    assert record["errors"]["error_rows"] > 0 and record["candidates_made"] >= record["rows_added"]
    # the tiny source is a bare encoder: no masked-LM head, so substitution by embedding neighbours, and it says so
    assert "teacher's input-embedding space" in record["candidates_from"]
    assert "no masked-LM head" in record["candidates_from"]
    assert record["decision"] == "rejected" and record["mode"] == "auto" and not record["passes_gate"]
    assert record["metric"] == "macro_f1" and record["dev_rows"] == report["data"]["sizes"]["validation"]
    assert record["threshold"] == pytest.approx(record["dev_before"]["macro_f1"] + record["standard_error"])
    assert "task student is kept" in record["why"]
    assert record["training"]["rows"] == {"gold": train, "transfer": 0, "augmented": record["rows_added"]}
    assert seen[-1] == train + record["rows_added"]  # the continuation: gold + augmented rows
    # the continuation is `augment_epochs` (1), not the task stage's early-stopped run up to task_max_epochs
    assert len(record["training"]["dev_per_epoch"]) == 1 and "stopped" not in record["training"]
    assert report["student"]["task_distillation"]["patience"] == 2  # the default, while the round has none
    progress = json.loads((out / "progress.json").read_text())
    assert list(progress["stages"]) == list(STAGES)  # data, source, search, distill, task, augment, qat, …
    # out/student is the task student, unchanged; the continued one is nowhere
    assert _weights(out / "student") == started[0]
    assert report["student"]["dev"] == progress["stages"]["task"]["dev"]
    assert not (out / "augment" / "task-student").exists() and not (out / "student-augment.tmp").exists()
    card = (out / "student" / "README.md").read_text()
    assert "Augmentation round" in card and "rejected: the task-distilled student was kept" in card
    rows = [json.loads(line) for line in (out / "augment" / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == record["rows_added"] and all(len(row["teacher_logits"]) == 2 for row in rows)

    # killed during the round's continuation: the teacher's labels are reused, not asked for again
    monkeypatch.setattr(augment, "augment", _must_not_run)
    state = json.loads((out / "progress.json").read_text())
    for stage in STAGES[STAGES.index("augment") :]:
        state["stages"].pop(stage, None)
    (out / "progress.json").write_text(json.dumps(state))
    again = compress(config).report
    assert again["augment"]["teacher_calls"] == record["teacher_calls"] and again["augment"]["decision"] == "rejected"
    assert _weights(out / "student") == started[0]


def test_always_keeps_the_continued_student_and_qat_starts_from_it(tmp_path, tiny_source, data_dir, monkeypatch):
    pool = _transfer_file(tmp_path, data_dir)
    out = tmp_path / "out"
    config = _config(
        tiny_source,
        data_dir,
        out,
        augment="always",
        augment_budget=6,
        unlabelled_dataset=str(pool),
        qat_steps=2,
        evaluate_test=False,
    )
    started = _spy_start(monkeypatch)
    _force_gain(monkeypatch, -0.5)  # worse on dev: `always` keeps it anyway, and records the gate
    report = compress(config).report
    record = report["augment"]
    assert record["candidates_from"] == "transfer set (unlabelled_dataset)" and record["candidates_made"] == 40
    assert 0 < record["teacher_calls"] <= 6 and record["budget_from"] == "augment_budget"
    assert record["decision"] == "kept" and record["passes_gate"] is False and "always" in record["why"]
    gold = report["data"]["sizes"]["train"]
    assert record["training"]["rows"] == {"gold": gold, "transfer": 40, "augmented": record["rows_added"]}
    pool_texts = {row["text"] + " again" for row in make_rows(40, seed=7)}
    rows = [json.loads(line) for line in (out / "augment" / "rows.jsonl").read_text().splitlines()]
    assert rows and all(row["text"] in pool_texts for row in rows)
    # the `qat` stage started from the kept (continued) student, not the task student
    assert _weights(out / "student-task") != started[0]
    assert report["student"]["dev_before_qat"] == record["dev_after"]
    assert "dev_simulated_int8" in report["qat"]


def test_auto_replaces_the_student_when_the_round_passes_the_gate(tmp_path, tiny_source, data_dir, monkeypatch):
    out = tmp_path / "out"
    started = _spy_start(monkeypatch)
    _force_gain(monkeypatch, 0.5)  # far more than one standard error on 32 dev rows
    config = _config(tiny_source, data_dir, out, augment="auto", augment_budget=8, evaluate_test=False)
    report = compress(config).report
    assert report["augment"]["decision"] == "kept" and report["augment"]["passes_gate"] is True
    assert _weights(out / "student") != started[0]
    assert report["student"]["dev"] == report["augment"]["dev_after"]
    assert "Augmentation round" in (out / "student" / "README.md").read_text()


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
        **fast_settings(
            candidate=GIVEN, reload_check=False, augment="auto", embedding_min_steps=0, embedding_patience=0
        ),
    )
    report = compress(config).report
    train = report["data"]["sizes"]["train"]
    assert report["data"]["transfer"]["rows"] == 40
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["stages"]["distill"]["texts"] == {"train": train, "transfer": 40}
    assert report["student"]["embedding_distillation"]["texts"] == {"train": train, "transfer": 40}
    # every text is seen each epoch: (96 + 40) / 16 batches × 2 epochs
    assert report["student"]["embedding_distillation"]["steps"] == 2 * -(-(train + 40) // 16)
    assert "needs task='text-classification'" in report["augment"]["skipped"]  # auto: skipped, with the reason
    assert report["augment"]["mode"] == "auto" and report["augment"]["teacher_calls"] == 0


def test_always_is_refused_before_any_work_for_a_single_output_source(tmp_path, tiny_source, data_dir):
    """A single-logit source (a reranker of single texts): the round reads class probabilities, so 'always' is
    an error in the `data` stage, before anything is written or trained."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from tiny_shapes import TINY_SHAPE

    source = tmp_path / "single"
    BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=1)).save_pretrained(source)
    BertTokenizerFast.from_pretrained(tiny_source).save_pretrained(source)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="'always' cannot run: augmentation reads class probabilities"):
        compress(_config(source, data_dir, out, augment="always"))
    assert not out.exists()
