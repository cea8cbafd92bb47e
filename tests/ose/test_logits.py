"""The logit reading of `ose/logits.py`: a softmax for ≥ 2 outputs, a Bernoulli for one (a reranker's logit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_bort.ose.logits import (
    binary_kd_loss,
    gold_loss,
    kd_loss,
    kl_to_teacher,
    label_classes,
    predict,
    task_loss,
)


def test_binary_kl_is_zero_for_equal_logits_and_positive_otherwise():
    logits = torch.tensor([[2.0], [-1.0], [0.0]])
    assert kl_to_teacher(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_to_teacher(logits, logits + 0.5, 2.0).item() > 0
    # the closed form at T = 1: p·log(p/q) + (1 − p)·log((1 − p)/(1 − q))
    p, q = torch.sigmoid(torch.tensor(1.0)), torch.sigmoid(torch.tensor(-0.5))
    expected = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    got = binary_kd_loss(torch.tensor([[-0.5]]), torch.tensor([[1.0]]), 1.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # T² scaling, as for the softmax KL
    student, teacher = torch.randn(5, 1), torch.randn(5, 1)
    scaled = binary_kd_loss(student, teacher, 3.0)
    assert scaled.item() == pytest.approx(9 * binary_kd_loss(student / 3, teacher / 3, 1.0).item(), rel=1e-5)
    with pytest.raises(ValueError, match="`temperature`"):
        binary_kd_loss(student, teacher, 0.0)


def test_two_or_more_logits_keep_the_softmax_kl_and_widths_must_match():
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    assert kl_to_teacher(student, teacher, 2.0).item() == pytest.approx(kd_loss(student, teacher, 2.0).item())
    with pytest.raises(ValueError, match="differ in width"):
        kl_to_teacher(torch.randn(4, 1), torch.randn(4, 2))


def test_gold_loss_is_bce_on_one_logit_and_skips_unlabelled_rows():
    logits, labels = torch.tensor([[1.5], [-0.3], [0.7]]), torch.tensor([1, -100, 0])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([1.5, 0.7]), torch.tensor([1.0, 0.0]))
    assert gold_loss(logits, labels).item() == pytest.approx(expected.item())
    wide = torch.randn(3, 2)
    assert gold_loss(wide, labels).item() == pytest.approx(F.cross_entropy(wide, labels, ignore_index=-100).item())


def test_task_loss_weights_bce_and_binary_kl():
    student, teacher, labels = torch.randn(4, 1), torch.randn(4, 1), torch.tensor([0, 1, 1, -100])
    kl = binary_kd_loss(student, teacher, 2.0)
    got = task_loss(student, teacher, labels, temperature=2.0, alpha_ce=0.3, alpha_kd=0.7)
    assert got.item() == pytest.approx((0.3 * gold_loss(student, labels) + 0.7 * kl).item(), rel=1e-5)
    assert task_loss(student, teacher, None, alpha_kd=0.7).item() == pytest.approx(0.7 * kl.item(), rel=1e-5)
    # it trains: a student with the teacher's logit has no KL left, only the gold term
    same = task_loss(teacher.clone(), teacher, torch.full((4,), -100), alpha_kd=1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-7)


def test_predict_thresholds_one_logit_at_zero_and_takes_the_argmax_otherwise():
    single = torch.tensor([[0.2], [-0.1], [0.0], [3.0]])
    assert predict(single).tolist() == [1, 0, 0, 1]
    assert predict(single.numpy()).tolist() == [1, 0, 0, 1]
    assert predict(single.numpy()).dtype == np.int64
    wide = torch.tensor([[0.1, 0.9, 0.0], [2.0, 0.0, 1.0]])
    assert predict(wide).tolist() == [1, 0] and predict(wide.numpy()).tolist() == [1, 0]
    assert (label_classes(1), label_classes(2), label_classes(3)) == (2, 2, 3)


def test_onnx_agreement_reads_a_single_logit_by_its_sign():
    from hf_bort.exporters.agreement import argmax_agreement

    mask = np.ones((4, 3), dtype=np.int64)
    reference = {"logits": np.array([[0.5], [-0.2], [1.0], [-3.0]])}
    flipped = {"logits": np.array([[0.4], [0.1], [-1.0], [-2.0]])}  # two signs flipped: argmax of one logit hides it
    assert argmax_agreement(reference, flipped, mask) == pytest.approx(0.5)
    assert argmax_agreement(reference, reference, mask) == 1.0
