"""
A classifier's logits as the losses, the search's ê and every evaluation read them — one place for both kinds of head:

- ≥ 2 logits: a softmax over the classes; the gold loss is cross-entropy, the distance to the teacher
  KL(softmax(t/T) ‖ softmax(s/T)), the prediction the argmax.
- 1 logit (a single-output cross-encoder: a reranker's relevance logit, read through a sigmoid, trained on binary
  relevance labels 0 / 1): a Bernoulli; the gold loss is BCE-with-logits, the distance to the teacher the binary
  KL(sigmoid(t/T) ‖ sigmoid(s/T)), the prediction `logit > 0` (class 1, relevant).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def label_classes(num_labels: int) -> int:
    """How many class ids the labels of a head with `num_labels` outputs may take: 2 (0 / 1) for a single output."""
    return 2 if num_labels == 1 else num_labels


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """T² · KL(teacher ‖ student) of the temperature-softened softmax distributions, averaged over the rows."""
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
    vocab = student_logits.shape[-1]
    student = F.log_softmax(student_logits.reshape(-1, vocab) / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.reshape(-1, vocab) / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature**2


def binary_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """T² · KL(Bernoulli(sigmoid(t/T)) ‖ Bernoulli(sigmoid(s/T))) of single logits, averaged over the rows."""
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
    s, t = student_logits.reshape(-1) / temperature, teacher_logits.reshape(-1) / temperature
    p = torch.sigmoid(t)
    # KL = p·(log p − log q) + (1 − p)·(log(1 − p) − log(1 − q)), with log sigmoid for stability
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean() * temperature**2


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """T² · KL(teacher ‖ student) of classifier logits: softmax for ≥ 2 outputs, Bernoulli for a single one."""
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(
            f"Student and teacher logits differ in width: {student_logits.shape[-1]} vs {teacher_logits.shape[-1]}."
        )
    if student_logits.shape[-1] == 1:
        return binary_kd_loss(student_logits, teacher_logits, temperature)
    return kd_loss(student_logits, teacher_logits, temperature)


def gold_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """
    The loss on gold class ids (rows labelled -100 skipped): cross-entropy for ≥ 2 outputs, BCE-with-logits on
    labels 0 / 1 for a single output.
    """
    flat = labels.reshape(-1)
    keep = flat != -100
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits.reshape(-1)[keep], flat[keep].to(logits.dtype))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, ignore_index=-100)


def task_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float = 2.0,
    alpha_ce: float = 0.5,
    alpha_kd: float = 0.5,
) -> torch.Tensor:
    """
    Task distillation of a classifier: `alpha_ce` · [`gold_loss`] on `labels` (rows labelled -100, or no labels at
    all, contribute none) + `alpha_kd` · [`kl_to_teacher`] at `temperature` over every row.
    """
    loss = alpha_kd * kl_to_teacher(student_logits, teacher_logits, temperature)
    if labels is not None and alpha_ce > 0 and bool((labels.reshape(-1) != -100).any()):
        loss = loss + alpha_ce * gold_loss(student_logits, labels)
    return loss


def predict(logits: Any) -> Any:
    """Class ids of classifier logits (a tensor or an array): the argmax, or `logit > 0` for a single output."""
    if logits.shape[-1] == 1:
        positive = logits[..., 0] > 0
        return positive.long() if isinstance(positive, torch.Tensor) else np.asarray(positive).astype(np.int64)
    return logits.argmax(-1)
