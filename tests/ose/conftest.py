from __future__ import annotations

import random

import pytest
import torch

from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import WORDS, bert_tokenizer, roberta_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def texts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(80)]


@pytest.fixture
def bert_tok(tmp_path):
    return bert_tokenizer(tmp_path / "bert_tok")


@pytest.fixture
def roberta_tok(tmp_path):
    return roberta_tokenizer(tmp_path / "roberta_tok")


@pytest.fixture
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(**TINY_SHAPE)).eval()


@pytest.fixture
def calibration():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (4, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    ids[1, 7:] = 1
    return [{"input_ids": ids, "attention_mask": mask}]
