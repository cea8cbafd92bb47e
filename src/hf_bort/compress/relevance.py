"""
The data of a single-output source classifier (`num_labels=1`: a cross-encoder reranker such as the ms-marco MiniLM
ones, one relevance logit read through a sigmoid): binary relevance labels 0 / 1, as integers or a `ClassLabel` with
two names, checked before any work. Training and evaluation read the logit as a Bernoulli (`ose/logits.py`).
"""

from __future__ import annotations

from ..data import TaskData, load_task_data

ADVICE = (
    "A single-output source (num_labels=1, a reranker) is distilled on binary relevance labels 0 / 1 (1: relevant). "
    "Give such labels (integers, or a ClassLabel with two names), or compress a multi-class classifier or a "
    "pretrained encoder instead."
)


def binary_relevance_data(config) -> TaskData:
    """`config.dataset`'s splits with labels 0 / 1; any other labels are refused naming `label_column`."""
    try:
        data = load_task_data(config, model_label2id=None, model_num_labels=2)
    except ValueError as error:
        if "do not fit the source classifier" not in str(error):
            raise
        raise ValueError(f"`label_column` {config.label_column!r}: {error} {ADVICE}") from error
    if len(data.label_names) != 2:
        raise ValueError(
            f"`label_column` {config.label_column!r} has {len(data.label_names)} classes {data.label_names}. {ADVICE}"
        )
    mapped = [note for note in data.notes if note.startswith("string labels mapped")]
    if mapped:
        raise ValueError(
            f"`label_column` {config.label_column!r} holds strings ({mapped[0]}): which one is 'relevant' is not "
            f"known. {ADVICE}"
        )
    return data
