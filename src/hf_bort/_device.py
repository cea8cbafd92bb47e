"""
Where computation runs: the one place that decides the device (and rank) of every stage's own loops.

[`compute_device`] asks accelerate's `PartialState` (the same state `Trainer` uses, so a stage's own loops and its
Trainer agree): the GPU of this process's rank under `torchrun` / `accelerate launch` (`cuda:LOCAL_RANK`), the one GPU
of a single process, else the CPU. Models and batches go there with [`to_device`]. Latency measurement does not use
it: latency is timed on the CPU on purpose (`hf_bort.measure`, the search's latency table, `compress`'s `latency`
stage), because that is the deployment target the budgets describe.
"""

from __future__ import annotations

from typing import Any


def compute_device():
    """`accelerate.PartialState().device`: this process's accelerator (one per torchrun rank), else the CPU."""
    try:
        from accelerate import PartialState
    except ImportError as error:  # a dependency of transformers' Trainer; named here in case it was removed
        raise ImportError("Placing models on a device needs accelerate: pip install 'accelerate>=1.0'.") from error
    return PartialState().device


def to_device(value: Any, device) -> Any:
    """
    `value` on `device`: a module (moved in place, returned), a tensor, or a dict / list / tuple of them (a new
    container; other entries kept as they are).
    """
    if hasattr(value, "to") and callable(value.to):
        return value.to(device)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    return value
