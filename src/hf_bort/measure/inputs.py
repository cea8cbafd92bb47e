"""Random encoder inputs for timing (speed does not depend on the token ids)."""

from __future__ import annotations

from typing import Any


def random_inputs(config: Any, batch_size: int, seq_len: int, seed: int, low: int = 5) -> dict[str, Any]:
    """`input_ids` drawn from [low, vocab_size) with a seeded generator, an all-ones `attention_mask`, and zero
    `token_type_ids` when the config has token types."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(low, config.vocab_size, (batch_size, seq_len), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "type_vocab_size", 0):
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs
