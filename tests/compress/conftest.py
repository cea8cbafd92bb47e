from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_shapes import TINY_SHAPE
from tiny_tasks import make_rows
from tiny_tokenizers import bert_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _own_latency_table(tmp_path, monkeypatch):
    """A latency budget's default table lives in HF_BORT_CACHE: each test gets its own, not the machine's."""
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path / "hf_bort_cache"))


@pytest.fixture
def tiny_source(tmp_path) -> Path:
    """A tiny pretrained BERT encoder (random weights) saved with its tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path / "tiny-bert"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(path)
    bert_tokenizer(path)  # writes vocab.txt
    from transformers import BertTokenizerFast

    BertTokenizerFast.from_pretrained(path).save_pretrained(path)
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """train.csv / validation.csv / test.csv with text and label columns."""
    import csv

    path = tmp_path / "data"
    path.mkdir()
    for name, n, seed in (("train", 96, 0), ("validation", 32, 1), ("test", 32, 2)):
        with open(path / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(make_rows(n, seed))
    return path


@pytest.fixture
def bert_tok(tmp_path):
    return bert_tokenizer(tmp_path / "bert_tok")
