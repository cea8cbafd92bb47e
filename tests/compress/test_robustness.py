"""
Issue 24's robustness of `compress`: the best dev epoch of fine-tuning and task distillation is kept (the report says
which), fine-tuning is sized by optimizer steps and stopped early on dev, a weak teacher is an error before the
search (or, allowed, a warning in report, card and CLI output, and the gold dev labels make the search's ê), and a
student far below its teacher is a warning.
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from hf_bort import CompressionConfig, compress
from hf_bort.compress import best_dev, quality, recipe
from hf_bort.ose import OSESearch
from hf_bort.ose.surrogate import CandidateTrainer
from tiny_tasks import fast_settings, make_rows

LEARNABLE = dict(finetune_learning_rate=3e-3, task_epochs=4.0, task_learning_rate=3e-3)


@pytest.fixture
def named_data_dir(tmp_path):
    """train / validation / test CSVs with integer labels and their names in a `label_text` column."""
    path = tmp_path / "named"
    path.mkdir()
    for name, n, seed in (("train", 96, 0), ("validation", 32, 1), ("test", 32, 2)):
        with open(path / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label", "label_text"])
            writer.writeheader()
            for row in make_rows(n, seed):
                writer.writerow({**row, "label_text": ["positive", "negative"][row["label"]]})
    return path


def test_best_dev_epochs_step_minimum_and_label_names_end_to_end(tmp_path, tiny_source, named_data_dir):
    out = tmp_path / "out"
    config = CompressionConfig(
        model=str(tiny_source),
        dataset=str(named_data_dir),
        output_dir=str(out),
        label_names_column="label_text",
        **fast_settings(finetune_min_steps=60, finetune_patience=0, task_patience=0, **LEARNABLE),
    )
    report = compress(config).report
    # fine-tuning sized by steps: 96 rows / batch 16 = 6 steps an epoch; 2 epochs would be 12 steps, 60 asked
    teacher = report["source"]["training"]
    assert teacher["steps"] == 60 and teacher["epochs"] == 10.0 and len(teacher["dev_per_epoch"]) == 10
    # the student is its best dev epoch (by macro-F1), and the report says which one
    training = report["student"]["task_distillation"]
    epochs = training["dev_per_epoch"]
    assert len(epochs) == 4 and training["best_checkpoint_metric"] == "macro_f1"  # task_patience=0: task_epochs
    assert training["stopped"] == "min_epochs" and training["planned_epochs"] == 4.0
    best = max(epochs, key=lambda e: e["macro_f1"])
    assert (
        training["best_epoch"]
        == best["epoch"]
        == next(e for e in epochs if e["macro_f1"] == best["macro_f1"])["epoch"]
    )
    assert report["student"]["dev"]["macro_f1"] == pytest.approx(best["macro_f1"], abs=1e-9)
    assert report["student"]["dev"]["macro_f1"] == pytest.approx(training["best_dev"]["macro_f1"], abs=1e-9)
    # names from the label_text column: id2label, report, card
    assert report["data"]["label_names"] == ["positive", "negative"]
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert student.config.id2label == {0: "positive", 1: "negative"}
    card = (out / "student" / "README.md").read_text()
    assert "0 `positive`, 1 `negative`" in card
    assert not report["warnings"] and "Warning" not in card
    assert f"epoch {training['best_epoch']:g} kept (best dev macro_f1)" in card
    assert not (out / "tmp-trainer").exists()  # the epoch checkpoints went with it


def _tiny_classifier(tiny_source):
    return recipe.classifier_from_encoder(str(tiny_source), ["a", "b"], seed=0)


@pytest.mark.parametrize(("after", "epochs_run"), [(0.0, 3), (3.0, 5)])
def test_finetune_keeps_the_best_epoch_and_stops_after_patience(tmp_path, tiny_source, monkeypatch, after, epochs_run):
    """
    Forced dev scores 0.9, 0.5, 0.4, …: epoch 1 is kept; training stops after 2 epochs without improvement, counted
    after the first `patience_after_epochs`.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_source)
    rows = Dataset.from_list(make_rows(32, 0))
    tokenised = recipe.tokenise(rows, tokenizer, 16)
    scores = iter([0.9, 0.5, 0.4, 0.3, 0.2, 0.1])
    monkeypatch.setattr(best_dev, "compute_metrics", lambda p: {"accuracy": 0.5, "macro_f1": next(scores)})
    model = _tiny_classifier(tiny_source)
    record = recipe.finetune(
        model,
        tokenised,
        tokenizer,
        epochs=6.0,
        learning_rate=1e-3,
        batch_size=16,
        seed=0,
        work_dir=tmp_path / "work",
        show_progress=False,
        eval_dataset=tokenised,
        patience=2,
        patience_after_epochs=after,
    )
    assert record["best_epoch"] == 1.0 and record["best_step"] == 2 and record["best_dev"]["macro_f1"] == 0.9
    assert record["stopped_early"] and record["steps"] == 2 * epochs_run  # 2 steps an epoch
    assert [e["macro_f1"] for e in record["dev_per_epoch"]] == [0.9, 0.5, 0.4, 0.3, 0.2][:epochs_run]


def test_epochs_for_a_step_minimum():
    assert best_dev.epochs_for(3.0, 250, 256, 32) == 32.0  # 8 steps an epoch
    assert best_dev.epochs_for(3.0, 250, 8530, 32) == 3.0  # 267 steps an epoch: the epochs already give more
    assert best_dev.epochs_for(3.0, 0, 256, 32) == 3.0


def test_a_weak_teacher_stops_before_the_search_then_is_allowed_with_warnings(
    tmp_path, tiny_source, data_dir, monkeypatch
):
    out = tmp_path / "out"
    # forced: a majority-class baseline no teacher beats
    monkeypatch.setattr(quality, "majority_baseline", lambda t, d: {"class": 0, "accuracy": 0.99, "macro_f1": 0.99})
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched with a weak teacher"))
    config = CompressionConfig(model=str(tiny_source), dataset=str(data_dir), output_dir=str(out), **fast_settings())
    with pytest.raises(ValueError, match=r"The teacher is weak: its dev macro-F1 .* is not 0 points above the "):
        compress(config)
    assert set(json.loads((out / "progress.json").read_text())["stages"]) == {"data", "source"}
    monkeypatch.undo()
    monkeypatch.setattr(quality, "majority_baseline", lambda t, d: {"class": 0, "accuracy": 0.99, "macro_f1": 0.99})
    gold_weights = []
    real_init = CandidateTrainer.__init__

    def spy(self, *args, **kwargs):
        gold_weights.append(kwargs.get("gold_weight"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(CandidateTrainer, "__init__", spy)
    real_evaluate = recipe.evaluate

    def student_far_below(model, dataset, tokenizer, *args, **kwargs):  # forced: a student dev macro-F1 of 0
        scores = real_evaluate(model, dataset, tokenizer, *args, **kwargs)
        return {**scores, "macro_f1": 0.0} if type(model).__name__.startswith("Bort") else scores

    monkeypatch.setattr(recipe, "evaluate", student_far_below)
    allowed = CompressionConfig(
        model=str(tiny_source), dataset=str(data_dir), output_dir=str(out), **fast_settings(allow_weak_teacher=True)
    )
    result = compress(allowed)  # resumes: the fine-tuned teacher is kept (allow_weak_teacher changes no result)
    report = result.report
    assert gold_weights == [1.0] and "CE(gold labels)" in report["search"]["objective"]
    assert report["source"]["weak"] and report["source"]["majority_baseline"]["macro_f1"] == 0.99
    weak, gap = report["warnings"]
    assert weak.startswith("The teacher is weak") and "allow_weak_teacher=True" in weak
    assert gap.startswith("The student's dev macro-F1 0.0 is") and "max_student_gap 5 points" in gap
    card = (out / "student" / "README.md").read_text()
    assert card.count("**Warning:**") == 2 and "The teacher is weak" in card
    summary = result.summary()
    assert "WARNING: The teacher is weak" in summary and "WARNING: The student's dev macro-F1" in summary


def test_a_sound_teacher_and_close_student_give_no_warning():
    baseline = quality.majority_baseline([0, 0, 0, 1, 2], [0, 0, 1, 2])
    assert baseline["class"] == 0 and baseline["accuracy"] == 0.5
    assert baseline["macro_f1"] == pytest.approx((2 * 2 / (2 * 2 + 2)) / 3)  # F1 of class 0, others 0
    sound = quality.teacher_verdict({"macro_f1": baseline["macro_f1"] + 0.11, "accuracy": 0.7}, baseline, 0.1)
    assert not sound["weak"] and quality.check_teacher({**sound, "dev": {}}, allow_weak=False) is None
    weak = quality.teacher_verdict({"macro_f1": baseline["macro_f1"] + 0.09, "accuracy": 0.7}, baseline, 0.1)
    assert weak["weak"]
    assert quality.student_gap_warning({"macro_f1": 0.80}, {"macro_f1": 0.76}, 0.05) is None
    assert quality.student_gap_warning({"macro_f1": 0.80}, {"macro_f1": 0.74}, 0.05) is not None


class _Fixed(torch.nn.Module):
    """A classifier whose logits are a function of the first input id (a teacher or student of the surrogate)."""

    def __init__(self, logits_of):
        super().__init__()
        self.logits_of = logits_of
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=torch.stack([self.logits_of(int(i)) for i in input_ids[:, 0]]))


def test_the_gold_labels_count_in_the_search_error():
    """A near-constant teacher: the KL ê prefers the student copying it; with the gold labels, the right one."""
    ids = torch.tensor([[0, 5], [1, 5], [0, 5], [1, 5]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])}
    teacher = _Fixed(lambda i: torch.tensor([1.0, -1.0]))  # always class 0
    copy = _Fixed(lambda i: torch.tensor([1.0, -1.0]))
    right = _Fixed(lambda i: torch.tensor([3.0, -3.0]) if i == 0 else torch.tensor([-3.0, 3.0]))

    def error(student, weight):
        trainer = CandidateTrainer(
            teacher, "task", [dict(batch)], [dict(batch)], learning_rate=1e-3, gold_weight=weight
        )
        return trainer.evaluate(student, None)[0]

    assert error(copy, 0.0) < error(right, 0.0)
    assert error(right, 1.0) < error(copy, 1.0)
    kl, ce = error(right, 0.0), error(right, 1.0)
    assert error(right, 0.5) == pytest.approx(0.5 * kl + 0.5 * ce)
    with pytest.raises(ValueError, match="`gold_weight`"):
        CandidateTrainer(teacher, "task", [dict(batch)], [dict(batch)], learning_rate=1e-3, gold_weight=1.5)


def test_the_task_error_records_both_of_its_terms_whatever_the_weight():
    """`dev_kl` and `dev_gold_loss` are the ê of weights 0 and 1: any mix can be scored from one evaluation."""
    ids = torch.tensor([[0, 5], [1, 5], [0, 5]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1])}
    teacher = _Fixed(lambda i: torch.tensor([1.0, -1.0]))
    student = _Fixed(lambda i: torch.tensor([2.0, -0.5]) if i == 0 else torch.tensor([-1.0, 1.5]))

    def evaluate(weight):
        trainer = CandidateTrainer(
            teacher, "task", [dict(batch)], [dict(batch)], learning_rate=1e-3, gold_weight=weight
        )
        return trainer.evaluate(student, None)

    kl, at_zero = evaluate(0.0)
    ce, at_one = evaluate(1.0)
    mixed, at_quarter = evaluate(0.25)
    for metrics in (at_zero, at_one, at_quarter):
        assert metrics["dev_kl"] == pytest.approx(kl) and metrics["dev_gold_loss"] == pytest.approx(ce)
        assert metrics["dev_accuracy"] == pytest.approx(2 / 3)
    assert kl != pytest.approx(ce) and mixed == pytest.approx(0.75 * kl + 0.25 * ce)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"finetune_min_steps": -1}, "`finetune_min_steps` must be an integer >= 0"),
        ({"finetune_patience": 1.5}, "`finetune_patience` must be an integer >= 0"),
        ({"best_checkpoint_metric": "loss"}, "`best_checkpoint_metric` must be 'macro_f1' or 'accuracy'"),
        ({"search_gold_weight": 2}, r"`search_gold_weight` must be a number in \[0, 1\] or None"),
        ({"max_student_gap": -0.1}, r"`max_student_gap` must be a number in \[0, 1\]"),
        ({"weak_teacher_margin": -1}, "`weak_teacher_margin` must be a finite number >= 0"),
        ({"allow_weak_teacher": "yes"}, "`allow_weak_teacher` must be True or False"),
    ],
)
def test_settings_are_checked(overrides, match):
    with pytest.raises(ValueError, match=match):
        CompressionConfig(model="m", dataset="d", **overrides)
