"""
The kinds of student `compress` makes, one [`CompressionTask`] class each, chosen by `CompressionConfig.task`.
A new kind (text pairs, token classification, …) is a new class here and a line in [`task_for`].
"""

from __future__ import annotations

from .base import CompressionTask


def task_for(config) -> CompressionTask:
    """The task class of `config.task` (text pairs: `config.text_pair_column`), set up with `config`."""
    if config.task == "feature-extraction":
        from .embedding import EmbeddingTask

        return EmbeddingTask(config)
    if getattr(config, "text_pair_column", None) is not None:
        from .pairs import PairClassificationTask

        return PairClassificationTask(config)
    from .classification import ClassificationTask

    return ClassificationTask(config)


__all__ = ["CompressionTask", "task_for"]
