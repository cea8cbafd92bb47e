"""
`compress` for embedding models: [`compress_embeddings`] (the same as `compress` with
`CompressionConfig(task="feature-extraction")`, see [`~hf_bort.compress.tasks.embedding.EmbeddingTask`]), and the
embedding steps of `hf_bort.compress.embedding_steps` under their former names here.
"""

from __future__ import annotations

from .config import CompressionConfig
from .embedding_steps import RELOAD_SNIPPET, distil_embeddings, encode, reload_check, save_head

__all__ = ["RELOAD_SNIPPET", "compress_embeddings", "distil_embeddings", "encode", "reload_check", "save_head"]


def compress_embeddings(config: CompressionConfig):
    """
    `compress` for `task="feature-extraction"` (the stages of [`~hf_bort.compress.tasks.embedding.EmbeddingTask`]).
    Returns a [`CompressionResult`] whose `student_path` is a sentence-transformers folder.
    """
    from .driver import run_stages
    from .tasks.embedding import EmbeddingTask

    return run_stages(config, EmbeddingTask(config))
