from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, DataCollatorWithPadding

from hf_bort import convert_to_bort
from hf_bort.ose import (
    Candidate,
    DistillationConfig,
    DistillationTrainer,
    bort_distillation_loss,
    compute_importance,
    extract_subnetwork,
    hidden_state_loss,
    kd_loss,
    make_projection,
)
from tiny_shapes import TINY_SHAPE


def test_kd_loss_is_zero_for_equal_logits_and_matches_the_formula():
    logits = torch.randn(5, 11)
    assert kd_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(5, 11)
    t = 2.0
    p = torch.softmax(logits / t, -1)
    expected = (p * (torch.log(p) - torch.log_softmax(student / t, -1))).sum(-1).mean() * t * t
    assert kd_loss(student, logits, t).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="`temperature`"):
        kd_loss(student, logits, 0.0)


def test_bort_recipe_weights():
    student, teacher = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    labels = torch.tensor([[1, -100, 2], [-100, -100, 6]])
    keep = labels.view(-1) != -100
    ce = torch.nn.functional.cross_entropy(student.view(-1, 7)[keep], labels.view(-1)[keep])
    kd = kd_loss(student.view(-1, 7)[keep], teacher.view(-1, 7)[keep], 2.0)
    assert bort_distillation_loss(student, teacher, labels).item() == pytest.approx((0.1 * ce + 0.5 * kd).item())


def test_hidden_state_loss_with_dimension_embedding_projection():
    teacher = torch.randn(2, 4, 6)
    dims = [0, 2, 5]
    student = teacher[..., dims]
    projection = make_projection(3, 6, dims)
    loss = hidden_state_loss(student, teacher, projection=projection)
    kept = (teacher[..., [1, 3, 4]] ** 2).sum() / (teacher**2).sum()
    assert loss.item() == pytest.approx(kept.item(), rel=1e-5)
    with pytest.raises(ValueError, match="pass a `projection`"):
        hidden_state_loss(student, teacher)


def _dataset(tokenizer, texts):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts}).map(
        lambda row: tokenizer(row["text"], truncation=True, max_length=16), remove_columns=["text"]
    )


@pytest.mark.parametrize("mlm", [True, False])
def test_distillation_trainer_moves_weights(tmp_path, bert_tok, texts, calibration, mlm):
    torch.manual_seed(0)
    teacher = convert_to_bort(BertForMaskedLM(BertConfig(**TINY_SHAPE)).eval())
    if not mlm:
        teacher = teacher.bort
    scores = compute_importance(teacher, calibration)
    student = extract_subnetwork(teacher, Candidate(1, 2, 24, 16, 8), scores)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    args = DistillationConfig(
        str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    collator = DataCollatorForLanguageModeling(bert_tok) if mlm else DataCollatorWithPadding(bert_tok)
    trainer = DistillationTrainer(
        model=student, teacher=teacher, args=args, train_dataset=_dataset(bert_tok, texts), data_collator=collator
    )
    assert trainer.use_logits is mlm and (trainer.projection is None) is mlm
    projection_before = None if mlm else trainer.projection.weight.detach().clone()
    trainer.train()
    moved = [k for k, v in student.state_dict().items() if not torch.equal(v, before[k])]
    assert any("encoder.layer.0" in k for k in moved)
    if not mlm:
        assert not torch.equal(trainer.projection.weight, projection_before)


def test_distillation_config_validation(tmp_path):
    with pytest.raises(ValueError, match="`temperature`"):
        DistillationConfig(str(tmp_path), temperature=0.0, report_to=[])
    with pytest.raises(ValueError, match="`alpha_kd`"):
        DistillationConfig(str(tmp_path), alpha_kd=-1.0, report_to=[])
    with pytest.raises(ValueError, match="`mlm_probability`"):
        DistillationConfig(str(tmp_path), mlm_probability=1.5, report_to=[])
