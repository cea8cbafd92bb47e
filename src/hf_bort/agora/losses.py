"""Agora v2's training loss: CE on gold (and self-trained) rows, KL to the teacher's probabilities on teacher rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def teacher_at_temperature(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's distribution at `temperature`: softmax(log p / T) (p itself at T = 1)."""
    return torch.softmax(probs.float().clamp_min(1e-12).log() / temperature, dim=-1)


def soft_label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    soft_targets: torch.Tensor | None = None,
    soft_mask: torch.Tensor | None = None,
    temperature: float = 2.0,
) -> torch.Tensor:
    """
    Per-row losses ([B]) of a batch mixing hard and soft rows, each times its weight (1 when `weights` is None):

    - soft rows (`soft_mask`): T² · KL(q_T ‖ softmax(z / T)), where q_T is the teacher's distribution
      `soft_targets` at temperature T ([`teacher_at_temperature`]);
    - the other rows: cross-entropy of the logits against `labels`.

    The caller reduces (mean over the batch, or sum / number of items).
    """
    logits = logits.float()
    losses = F.cross_entropy(logits, labels.long(), reduction="none")
    if soft_targets is not None and soft_mask is not None and bool(soft_mask.any()):
        target = teacher_at_temperature(soft_targets, temperature)
        log_student = F.log_softmax(logits / temperature, dim=-1)
        kl = (target * (target.clamp_min(1e-12).log() - log_student)).sum(-1) * temperature**2
        losses = torch.where(soft_mask.bool(), kl, losses)
    if weights is not None:
        losses = losses * weights.float()
    return losses
