"""Batching for a training set that mixes token rows (`input_ids`) and embedding rows (`inputs_embeds`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "inputs_embeds", "labels")
#: Agora v2's per-row training keys: a teacher's probabilities (soft label) and a loss weight.
LOSS_KEYS = ("agora_soft", "agora_weight")


def model_row(row: dict) -> dict:
    """The model-input part of a dataset row (`label` renamed `labels`)."""
    out = {k: row[k] for k in (*MODEL_KEYS, *LOSS_KEYS) if k in row and row[k] is not None}
    if "labels" not in out and row.get("label") is not None:
        out["labels"] = row["label"]
    return out


def _pad(seqs: list[torch.Tensor], value: float | int) -> torch.Tensor:
    length = max(s.shape[0] for s in seqs)
    out = seqs[0].new_full((len(seqs), length, *seqs[0].shape[1:]), value)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


def pad_points(features: Sequence[dict], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """
    Right-pads `input_ids`/`attention_mask`/`token_type_ids` and stacks (padding when 2-D) `inputs_embeds`. A batch
    mixing token and embedding rows gets `input_ids` for all rows plus `agora_inputs_embeds` and `agora_embeds_mask`,
    which [`AgoraTrainer.compute_loss`] merges into the looked-up embeddings.
    """
    batch: dict[str, torch.Tensor] = {}
    has_ids = ["input_ids" in f for f in features]
    has_emb = ["inputs_embeds" in f for f in features]
    ids = [torch.as_tensor(f["input_ids"], dtype=torch.long) for f in features] if all(has_ids) else None
    if any(has_emb) and not all(has_emb) and ids is None:
        raise ValueError("A batch mixes embedding rows and rows without `input_ids`: cannot merge them.")
    if ids is not None:
        batch["input_ids"] = _pad(ids, pad_token_id)
        if all("attention_mask" in f for f in features):
            batch["attention_mask"] = _pad([torch.as_tensor(f["attention_mask"]) for f in features], 0)
        else:
            batch["attention_mask"] = _pad([torch.ones_like(i) for i in ids], 0)
        if all("token_type_ids" in f for f in features):
            batch["token_type_ids"] = _pad([torch.as_tensor(f["token_type_ids"]) for f in features], 0)
    if any(has_emb):
        embeds = [torch.as_tensor(f["inputs_embeds"], dtype=torch.float32) for f in features if "inputs_embeds" in f]
        if all(has_emb):
            batch["inputs_embeds"] = _pad(embeds, 0.0) if embeds[0].dim() == 2 else torch.stack(embeds)
            batch.pop("input_ids", None)
            if embeds[0].dim() == 1:
                batch.pop("attention_mask", None)
        else:
            width = embeds[0].shape[-1]
            length = batch["input_ids"].shape[1]
            merged = torch.zeros(len(features), length, width)
            for i, f in enumerate(features):
                if "inputs_embeds" in f:
                    e = torch.as_tensor(f["inputs_embeds"], dtype=torch.float32)
                    merged[i, : e.shape[0]] = e
            batch["agora_inputs_embeds"] = merged
            batch["agora_embeds_mask"] = torch.tensor(has_emb)
    if all("labels" in f for f in features):
        batch["labels"] = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
    if any(k in f for f in features for k in LOSS_KEYS):
        # v2 rows: every row gets a weight (1 by default); soft rows their teacher probabilities, flagged by a mask.
        batch["agora_weight"] = torch.tensor([float(f.get("agora_weight", 1.0)) for f in features])
        soft = [f.get("agora_soft") for f in features]
        if any(s is not None for s in soft):
            width = next(torch.as_tensor(s).numel() for s in soft if s is not None)
            batch["agora_soft"] = torch.stack(
                [torch.zeros(width) if s is None else torch.as_tensor(s, dtype=torch.float32) for s in soft]
            )
            batch["agora_soft_mask"] = torch.tensor([s is not None for s in soft])
    return batch


class AgoraCollator:
    """Collates model rows of the Agora training set (see [`pad_points`])."""

    def __init__(self, pad_token_id: int = 0):
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        return pad_points([model_row(f) for f in features], self.pad_token_id)
