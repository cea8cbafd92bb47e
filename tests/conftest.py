from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

import hf_bort  # noqa: F401  (registers the Auto classes)
from lock_holder import held_lock  # noqa: F401  (fixture: a lock held by another process)
from tiny_shapes import TINY_SHAPE

if os.environ.get("PYTEST_XDIST_WORKER"):  # under `pytest -n N`: one torch thread per worker, not N on each core
    torch.set_num_threads(1)


@pytest.fixture
def tiny_kwargs() -> dict:
    """The shared tiny shape of tests/tiny_shapes.py: hidden 32, 2 layers, 4 heads."""
    return dict(TINY_SHAPE)


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """Two sequences, the second padded (pad id 1 fits RoBERTa; BERT's pad 0 is never drawn)."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 99, (2, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 6:] = 1
    attention_mask[1, 6:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
