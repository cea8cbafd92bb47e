"""The search's distributed glue: rank and world size, and joining the process group a launcher describes."""

from __future__ import annotations

import os

import torch


def rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def maybe_init_distributed() -> None:
    """Joins the process group `accelerate launch` / `torchrun` describe in the environment (gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
