"""Tiny tokenizers built offline for the tests (the Hub is unreachable)."""

from __future__ import annotations

import json
from pathlib import Path

import transformers

_V5 = int(transformers.__version__.split(".")[0]) >= 5

WORDS = "the a movie film was is good bad great awful not very fun dull plot acting story and but it".split()


def bert_tokenizer(directory: Path):
    """A WordPiece tokenizer with 99 entries (BERT's special tokens first, pad id 0)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab += [f"tok{i}" for i in range(99 - len(vocab))]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    files = {"vocab": str(directory / "vocab.txt")} if _V5 else {"vocab_file": str(directory / "vocab.txt")}
    return BertTokenizerFast(**files, model_max_length=64)


def roberta_tokenizer(directory: Path):
    """A byte-level BPE tokenizer with 99 entries and RoBERTa's special tokens (<s>=0, <pad>=1, </s>=2, <mask>)."""
    from transformers import RobertaTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for word in WORDS:
        vocab.setdefault("\u0120" + word, len(vocab))
    for char in "abcdefghijklmnopqrstuvwxyz\u0120":
        vocab.setdefault(char, len(vocab))
    while len(vocab) < 99:
        vocab[f"x{len(vocab)}"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    if _V5:
        files = {"vocab": vocab, "merges": []}
    else:
        files = {"vocab_file": str(directory / "vocab.json"), "merges_file": str(directory / "merges.txt")}
    return RobertaTokenizerFast(**files, model_max_length=60)
