"""ONNX Runtime CPU sessions, built the one way hf_bort times and validates them."""

from __future__ import annotations

import os
from typing import Any

ONNXRUNTIME_HINT = 'pip install "hf-bort[onnx]"'

# ORT session config entries every hf_bort session gets. Intra-op threads do not spin-wait between runs: on a 2-core
# machine shared with other work, spinning threads took cores from whatever ran next (another session, PyTorch in the
# same process, other processes), and ORT fp32 without spinning was 1.2-2.0x faster than with it at batch 1 and 8,
# length 128 (benchmarks/results/ort_settings.json; one run on a loaded machine, not measured on a quiet one).
SESSION_CONFIG: dict[str, str] = {"session.intra_op.allow_spinning": "0"}


def ort_session(
    path: str | os.PathLike | bytes, threads: int | None = None, config_entries: dict[str, str] | None = None
):
    """A CPU `InferenceSession` for the ONNX file at `path` (or a serialized model): `threads` intra-op threads
    (None or 0: ORT's default), one inter-op thread, sequential execution, every graph optimisation, and
    `config_entries` (ORT session config keys, e.g. `{"session.intra_op.allow_spinning": "0"}`) on top of
    `SESSION_CONFIG` (None: `SESSION_CONFIG` alone)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in {**SESSION_CONFIG, **(config_entries or {})}.items():
        options.add_session_config_entry(key, str(value))
    model = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def session_feed(session, inputs: dict[str, Any]) -> dict[str, Any]:
    """The entries of `inputs` the session takes (torch tensors converted to numpy)."""
    names = {item.name for item in session.get_inputs()}
    return {
        key: (value.numpy() if hasattr(value, "numpy") else value) for key, value in inputs.items() if key in names
    }


def run_session(session, inputs: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
    """Outputs `names` (None: all) of `session` on `inputs` (the ones it does not take are dropped), by name."""
    names = names or [item.name for item in session.get_outputs()]
    return dict(zip(names, session.run(names, session_feed(session, inputs)), strict=True))
