"""Tiny sentence-transformers folders built offline for the tests: BertModel + Pooling (+ Dense) + Normalize."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import bert_tokenizer

SENTENCES = ["the movie was good", "a dull plot and bad acting", "not very fun", "great story", "it is awful"]


def tiny_sentence_transformer(
    directory: Path, *, dense: int | None = None, pooling_mode: str | tuple[str, ...] = "mean", subfolder: str = ""
) -> Path:
    """Saves a tiny sentence-transformers model to `directory` (the encoder at the root, or in `subfolder`)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(0)
    encoder_dir = directory.parent / f"{directory.name}-encoder"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(encoder_dir)
    bert_tokenizer(encoder_dir)
    bert_tokenizer(encoder_dir).save_pretrained(encoder_dir)
    transformer = Transformer(str(encoder_dir), max_seq_length=32)
    hidden = TINY_SHAPE["hidden_size"]
    pooling = Pooling(hidden, pooling_mode=pooling_mode)
    modules = [transformer, pooling]
    if dense is not None:
        modules.append(Dense(pooling.get_sentence_embedding_dimension(), dense))
    modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model.save(str(directory))
    if subfolder:  # move the encoder into a sub-folder, as older sentence-transformers releases saved it
        import json
        import shutil

        (directory / subfolder).mkdir()
        for path in list(directory.iterdir()):
            if path.is_file() and path.name not in ("modules.json", "config_sentence_transformers.json", "README.md"):
                shutil.move(str(path), directory / subfolder / path.name)
        entries = json.loads((directory / "modules.json").read_text())
        entries[0]["path"] = subfolder
        (directory / "modules.json").write_text(json.dumps(entries))
    return directory
