"""The search's distributed glue: rank and world size, and joining the process group a launcher describes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .._lock import InUseError, exclusive_lock


def rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def maybe_init_distributed() -> None:
    """Joins the process group `accelerate launch` / `torchrun` describe in the environment (gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)


@contextlib.contextmanager
def main_process_lock(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """
    [`hf_bort._lock.exclusive_lock`] held by rank 0 for the whole process group: when it is taken, every rank raises
    the same `InUseError` (instead of the other ranks waiting for rank 0 in a collective).
    """
    rank, world = rank_world()
    with contextlib.ExitStack() as stack:
        message = None
        if rank == 0:
            try:
                stack.enter_context(exclusive_lock(lock_path, what))
            except InUseError as error:
                message = str(error)
        if world > 1:
            box = [message]
            torch.distributed.broadcast_object_list(box, src=0)
            message = box[0]
        if message is not None:
            raise InUseError(message)
        yield
