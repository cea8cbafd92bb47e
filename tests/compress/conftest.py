from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_shapes import TINY_SHAPE  # noqa: E402
from tiny_tokenizers import bert_tokenizer  # noqa: E402

POSITIVE = "good great fun".split()
NEGATIVE = "bad awful dull".split()
FILLER = "the a movie film was is very plot acting story and but it".split()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_rows(n: int, seed: int, num_labels: int = 2) -> list[dict]:
    """Texts whose label is carried by one word (learnable by a tiny model); `num_labels` 2 or 3."""
    rng = random.Random(seed)
    cues = [POSITIVE, NEGATIVE, ["not"]][:num_labels]
    rows = []
    for i in range(n):
        label = i % num_labels
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(cues[label]))
        rows.append({"text": " ".join(words), "label": label})
    return rows


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


def fast_settings(**overrides) -> dict:
    """Tiny budgets for every stage (seconds on one thread)."""
    settings = dict(
        max_cost_ratio=0.6,
        max_length=16,
        finetune_epochs=2.0,
        finetune_learning_rate=1e-3,
        batch_size=16,
        epsilon=0.5,
        search_base_steps=4,
        search_interval=2,
        search_batch_size=8,
        search_eval_rows=32,
        search_layers="1,2",
        search_heads="2,4",
        search_hidden="24,32",
        search_intermediate="16,37",
        distill_epochs=1.0,
        task_epochs=2.0,
        task_learning_rate=1e-3,
        measure_onnx=False,
        latency_runs=5,
        show_progress=False,
    )
    settings.update(overrides)
    return settings
