"""The teacher's logits computed once (`add_teacher_logits`) stand for its forward in task distillation: same loss."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, DataCollatorWithPadding

from hf_bort import convert_to_bort
from hf_bort.compress import recipe
from hf_bort.ose import (
    Candidate,
    DistillationConfig,
    DistillationTrainer,
    add_teacher_logits,
    compute_importance,
    extract_subnetwork,
)
from tiny_shapes import TINY_SHAPE


@pytest.fixture
def pair(calibration):
    torch.manual_seed(0)
    teacher = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=3)).eval())
    with torch.no_grad():
        teacher.classifier.weight.mul_(10.0)
    student = extract_subnetwork(teacher, Candidate(1, 2, 24, 16, 8), compute_importance(teacher, calibration))
    return teacher, student


@pytest.fixture
def rows(bert_tok, texts):
    data = Dataset.from_dict({"text": texts, "labels": [i % 3 for i in range(len(texts))]})
    return data.map(lambda r: bert_tok(r["text"], truncation=True, max_length=16), remove_columns=["text"])


class _CountCalls:
    def __init__(self, module):
        self.calls = 0
        module.register_forward_hook(self)

    def __call__(self, *args):
        self.calls += 1


def test_the_column_holds_each_row_s_teacher_logits_in_row_order(pair, rows, bert_tok):
    teacher, _ = pair
    cached = add_teacher_logits(rows, teacher, DataCollatorWithPadding(bert_tok), batch_size=3)
    assert cached.column_names == [*rows.column_names, "teacher_logits"] and len(cached) == len(rows)
    for i in (0, 5, len(rows) - 1):  # batched by length, written back in the rows' order
        inputs = DataCollatorWithPadding(bert_tok)([{k: v for k, v in rows[i].items() if k != "labels"}])
        with torch.no_grad():
            expected = teacher(**inputs).logits[0]
        assert torch.allclose(torch.tensor(cached[i]["teacher_logits"]), expected, atol=1e-5)
    assert teacher.training is False
    with pytest.raises(ValueError, match="already hold a `teacher_logits` column"):
        add_teacher_logits(cached, teacher, DataCollatorWithPadding(bert_tok))


def _train(tmp_path, teacher, student, data, bert_tok, remove_unused_columns=True):
    args = DistillationConfig(
        str(tmp_path),
        max_steps=6,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        remove_unused_columns=remove_unused_columns,
        logging_steps=1,
    )
    trainer = DistillationTrainer(
        model=student, teacher=teacher, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(bert_tok)
    )
    calls = _CountCalls(teacher)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, calls.calls


def test_the_cached_logits_give_the_same_training_without_running_the_teacher(tmp_path, pair, rows, bert_tok):
    teacher, student = pair
    cached = add_teacher_logits(rows, teacher, DataCollatorWithPadding(bert_tok))
    plain_losses, plain_calls = _train(tmp_path / "a", copy.deepcopy(teacher), copy.deepcopy(student), rows, bert_tok)
    cached_losses, cached_calls = _train(
        tmp_path / "b", teacher, copy.deepcopy(student), cached, bert_tok, remove_unused_columns=False
    )
    assert plain_calls == 6 and cached_calls == 0
    assert len(cached_losses) == 6 and cached_losses == pytest.approx(plain_losses, rel=1e-4)


def test_a_cached_column_that_trainer_would_drop_is_an_error(tmp_path, pair, rows, bert_tok):
    teacher, student = pair
    cached = add_teacher_logits(rows, teacher, DataCollatorWithPadding(bert_tok))
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        _train(tmp_path, teacher, copy.deepcopy(student), cached, bert_tok, remove_unused_columns=True)


def test_finetune_caches_the_teacher_once_and_records_it(tmp_path, pair, rows, bert_tok):
    teacher, student = pair
    common = dict(epochs=2.0, learning_rate=3e-3, batch_size=4, seed=0, show_progress=False, teacher=teacher)
    calls = _CountCalls(teacher)
    plain = recipe.finetune(copy.deepcopy(student), rows, bert_tok, work_dir=tmp_path / "a", **common)
    plain_calls, calls.calls = calls.calls, 0
    cached = recipe.finetune(
        copy.deepcopy(student), rows, bert_tok, work_dir=tmp_path / "b", cache_teacher_logits=True, **common
    )
    batches = -(-len(rows) // 4)
    assert plain_calls == 2 * batches  # once per batch per epoch
    assert calls.calls == -(-len(rows) // 64)  # once over the rows, in batches of 64
    assert cached["teacher_logits_cached"]["rows"] == len(rows) and "teacher_logits_cached" not in plain
    assert cached["steps"] == plain["steps"] and cached["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="`cache_teacher_logits` needs a `teacher`"):
        recipe.finetune(
            student, rows, bert_tok, work_dir=tmp_path / "c", **{**common, "teacher": None}, cache_teacher_logits=True
        )
