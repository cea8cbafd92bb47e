"""Issue 24: task distillation of classification students goes on after `task_epochs` while dev improves
(`task_patience`, at most `task_max_epochs`), and `benchmarks/compress_task.py --rerun-from task`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from hf_bort import CompressionConfig, compress
from hf_bort.compress import best_dev, recipe
from hf_bort.compress.tasks.classification import ClassificationTask
from hf_bort.compress.tasks.pairs import PairClassificationTask
from tiny_shapes import TINY_SHAPE
from tiny_tasks import fast_settings, make_rows

REPO = Path(__file__).resolve().parents[2]
GIVEN = "D1-A2-H24-I16-d8"  # a given shape: no search


def _config(**overrides) -> CompressionConfig:
    return CompressionConfig(model="m", dataset="d", **fast_settings(**overrides))


# ------------------------------------------------------------------------------------------------------- settings
def test_defaults_are_resolved_for_classification_only_and_saved():
    config = _config()
    assert (config.task_patience, config.task_max_epochs) == (2, 10)
    saved = config.to_dict()
    assert saved["task_patience"] == 2 and saved["task_max_epochs"] == 10
    assert _config(task_patience=0).differences(saved) == ["task_patience"]  # a resume notices the change
    assert _config(task_max_epochs=4).differences(saved) == ["task_max_epochs"]
    embedding = CompressionConfig(model="st", dataset="t", task="feature-extraction", **fast_settings())
    assert embedding.task_patience is None and embedding.to_dict()["task_max_epochs"] is None


def test_a_run_saved_before_the_settings_existed_counts_as_patience_0():
    added = ("task_patience", "task_max_epochs")
    old = {k: v for k, v in _config(task_patience=0).to_dict().items() if k not in added}
    assert _config(task_patience=0).differences(old) == []
    assert _config().differences(old) == ["task_patience"]  # it trained exactly task_epochs: not the new default
    embedding = CompressionConfig(model="st", dataset="t", task="feature-extraction", **fast_settings())
    old_embedding = {k: v for k, v in embedding.to_dict().items() if k not in added}
    assert embedding.differences(old_embedding) == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(task_patience=-1), "`task_patience` must be an integer >= 0"),
        (dict(task_patience=1.5), "`task_patience` must be an integer >= 0"),
        (dict(task_patience=True), "`task_patience` must be an integer >= 0"),
        (dict(task_max_epochs=0), "`task_max_epochs` must be an integer >= 1"),
        (dict(task_max_epochs=4.0), "`task_max_epochs` must be an integer >= 1"),
        (dict(task_max_epochs=2, task_epochs=3.0), r"`task_max_epochs` \(2\) must be >= `task_epochs` \(3.0\)"),
        (dict(task="feature-extraction", task_patience=2), "`task_patience` applies to task='text-classification'"),
        (dict(task="feature-extraction", task_max_epochs=5), "`task_max_epochs` applies to task='text-classificat"),
    ],
)
def test_bad_task_stopping_settings_are_refused_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_the_cli_parses_the_task_stopping_settings():
    from hf_bort.compress.cli import parse

    argv = ["m", "--dataset", "t/", "--measure-onnx", "false"]
    config = parse([*argv, "--task-patience", "0", "--task-max-epochs", "4"])
    assert (config.task_patience, config.task_max_epochs) == (0, 4)
    with pytest.raises(ValueError, match="`task_patience` must be an integer >= 0"):
        parse([*argv, "--task-patience", "-1"])


# ------------------------------------------------------------------------------------- the task stage, scripted
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny distilled student on disk, a teacher, a tokenizer and 32 train (2 steps an epoch) / 16 dev rows."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from tiny_tokenizers import bert_tokenizer

    folder = tmp_path_factory.mktemp("task")
    bert_tokenizer(folder / "tok")
    tokenizer = BertTokenizerFast.from_pretrained(folder / "tok")
    torch.manual_seed(0)
    shape = BertConfig(**TINY_SHAPE, num_labels=2)
    BertForSequenceClassification(shape).save_pretrained(folder / "out" / "student-distilled")
    teacher = BertForSequenceClassification(shape).eval()
    train = recipe.tokenise(Dataset.from_list(make_rows(32, 0)), tokenizer, 16)
    dev = recipe.tokenise(Dataset.from_list(make_rows(16, 1)), tokenizer, 16)
    return folder / "out", teacher, tokenizer, train, dev


def _train(parts, monkeypatch, scores, **overrides):
    """`ClassificationTask.train_student` whose dev macro-F1 per epoch is `scores` in turn; the finetune keywords."""
    out, teacher, tokenizer, train, dev = parts
    settings = dict(task_epochs=2.0, batch_size=16, task_learning_rate=1e-3)
    task = ClassificationTask(_config(**{**settings, **overrides}))
    task.tokenizer, task.teacher, task.source_record = tokenizer, teacher, {"dev": {"macro_f1": 1.0, "accuracy": 1.0}}
    task.__dict__["tokenised"] = {"train": train, "validation": dev}
    scores = iter(scores)
    monkeypatch.setattr(best_dev, "compute_metrics", lambda prediction: {"accuracy": 0.5, "macro_f1": next(scores)})
    calls = []
    real = recipe.finetune

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(recipe, "finetune", spy)
    record = task.train_student(out)["training"]
    return record, calls[0]


def _macro_f1s(record):
    return [entry["macro_f1"] for entry in record["dev_per_epoch"]]


def test_patience_stops_after_task_epochs_when_dev_stops_improving(parts, monkeypatch):
    record, call = _train(parts, monkeypatch, [0.5, 0.6, 0.55, 0.58, 0.9, 0.95], task_patience=2)
    # epochs 1-2 always run; epochs 3 and 4 no better than 0.6: stopped before the 0.9 of epoch 5
    assert _macro_f1s(record) == [0.5, 0.6, 0.55, 0.58]
    assert record["best_epoch"] == 2 and record["best_dev"]["macro_f1"] == 0.6 and record["steps"] == 8
    assert record["stopped"] == "patience" and record["stopped_early"]
    assert "2 epoch(s) in a row after task_epochs" in record["stopped_why"]
    assert record["epochs"] == 4 and record["planned_epochs"] == 10 and record["max_epochs"] == 10
    assert record["min_epochs"] == 2.0 and record["patience"] == 2
    assert "over 10 epochs (task_max_epochs)" in record["learning_rate_decay"]
    assert call["epochs"] == 10 and call["patience"] == 2 and call["patience_after_epochs"] == 2.0  # the decay: 10


def test_patience_counts_only_the_epochs_after_task_epochs(parts, monkeypatch):
    record, _ = _train(parts, monkeypatch, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1], task_epochs=3.0, task_patience=1)
    assert _macro_f1s(record) == [0.9, 0.1, 0.1, 0.1]  # epochs 2 and 3 no better, yet they ran; epoch 4 stopped it
    assert record["best_epoch"] == 1 and record["stopped"] == "patience"


def test_task_max_epochs_caps_a_run_still_improving(parts, monkeypatch):
    record, _ = _train(parts, monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], task_patience=2, task_max_epochs=4)
    assert _macro_f1s(record) == [0.1, 0.2, 0.3, 0.4] and record["steps"] == 8
    assert record["stopped"] == "max_epochs" and not record["stopped_early"] and record["best_epoch"] == 4
    assert record["stopped_why"] == "reached task_max_epochs" and record["planned_epochs"] == 4


def test_patience_0_trains_exactly_task_epochs_with_the_decay_over_them(parts, monkeypatch):
    record, call = _train(parts, monkeypatch, [0.8, 0.3, 0.9, 0.9], task_patience=0, task_max_epochs=10)
    assert _macro_f1s(record) == [0.8, 0.3] and record["steps"] == 4 and record["best_epoch"] == 1
    assert record["stopped"] == "min_epochs" and record["planned_epochs"] == 2.0 and record["max_epochs"] == 2.0
    assert "over 2.0 epochs (task_epochs)" in record["learning_rate_decay"]
    assert call["epochs"] == 2.0 and call["patience"] is None  # the earlier call: no callback, decay over 2 epochs


def test_text_pairs_share_the_task_stage():
    assert PairClassificationTask.train_student is ClassificationTask.train_student


# -------------------------------------------------------------------------------- compress_task.py --rerun-from
@pytest.fixture
def compress_task(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("compress_task")


def _run_config(tiny_source, data_dir, out, **overrides):
    settings = fast_settings(candidate=GIVEN, reload_check=False, evaluate_test=False, **overrides)
    return CompressionConfig(model=str(tiny_source), dataset=str(data_dir), output_dir=str(out), **settings)


def test_rerun_from_task_keeps_the_distilled_student_and_trains_the_task_student_again(
    tmp_path, tiny_source, data_dir, compress_task, monkeypatch
):
    first = tmp_path / "first"
    compress(_run_config(tiny_source, data_dir, first, task_patience=0))
    (first / "augment").mkdir()  # what a round and a `qat` stage leave: would be reused by the rerun stages
    (first / "augment" / "round.json").write_text("{}")
    (first / "student-task").mkdir()
    before = json.loads((first / "progress.json").read_text())["stages"]

    # other settings than the task stage's and the augmentation's are refused; so are task_* ones from `augment`
    other = _run_config(tiny_source, data_dir, tmp_path / "other", task_patience=1, distill_epochs=2.0)
    with pytest.raises(SystemExit, match=r"other settings: \['distill_epochs'\]"):
        compress_task.continue_from(first, other, "task")
    changed = _run_config(tiny_source, data_dir, tmp_path / "again", task_patience=1, task_max_epochs=3)
    with pytest.raises(SystemExit, match=r"other settings: \['task_max_epochs', 'task_patience'\]"):
        compress_task.continue_from(first, changed, "augment")
    assert not (tmp_path / "again").exists()

    kept = compress_task.continue_from(first, changed, "task")
    again = tmp_path / "again"
    assert kept == ["data", "source", "search", "distill"]
    assert list(json.loads((again / "progress.json").read_text())["stages"]) == kept
    assert (again / "student-distilled").is_dir() and (again / "source-finetuned").is_dir()
    for name in ("student", "student-task", "augment", "compression_report.json"):
        assert not (again / name).exists(), name
        assert (first / name).exists(), name  # the finished run is untouched

    def must_not_run(*args, **kwargs):
        raise AssertionError("the kept stages ran again")

    monkeypatch.setattr(recipe, "extract_and_distil", must_not_run)
    report = compress(changed).report
    training = report["student"]["task_distillation"]
    assert training["patience"] == 1 and training["planned_epochs"] == 3
    assert training["stopped"] in ("patience", "max_epochs") and len(training["dev_per_epoch"]) == 3
    stages = json.loads((again / "progress.json").read_text())["stages"]
    assert stages["distill"] == before["distill"] and stages["source"] == before["source"]
    first_training = before["task"]["training"]
    assert first_training["stopped"] == "min_epochs" and len(first_training["dev_per_epoch"]) == 2
    # the finished run's folder, resumed with another task_patience: refused like any other changed setting
    with pytest.raises(ValueError, match=r"holds a run with other settings \(task_patience\)"):
        compress(_run_config(tiny_source, data_dir, again, task_patience=2, task_max_epochs=3))
