"""
Accelerator placement: every stage's own loops put models and batches on `hf_bort._device.compute_device()`.

No GPU here, so the device function is patched to return a fake device and `to_device` to a spy that tags what it is
given (modules and tensors stay on the CPU); `BortModel.forward` is wrapped to assert that the module that runs and
its `input_ids` were both placed. Without the placement calls, the assertions fail.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch

from hf_bort import _device
from hf_bort.models.bort import BortConfig, BortForSequenceClassification, BortModel
from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import bert_tokenizer

FAKE = "fake-accelerator"
MARK = "_hf_bort_placed_on"


def _spy(value, device):
    assert device == FAKE, f"moved to {device!r}, not to the device compute_device() chose"
    if isinstance(value, torch.nn.Module):
        for module in value.modules():
            setattr(module, MARK, device)
        return value
    if isinstance(value, torch.Tensor):
        setattr(value, MARK, device)
        return value
    if isinstance(value, Mapping):  # dicts and transformers' BatchEncoding
        return {key: _spy(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_spy(item, device) for item in value)
    return value


@pytest.fixture
def fake_device(monkeypatch):
    """compute_device() → FAKE; every BortModel forward asserts that it and its input_ids were placed there."""
    monkeypatch.setattr(_device, "compute_device", lambda: FAKE)
    monkeypatch.setattr(_device, "to_device", _spy)
    original = BortModel.forward
    calls = []

    def checked(self, input_ids=None, *args, **kwargs):
        assert getattr(self, MARK, None) == FAKE, "a model ran that was not placed on the compute device"
        assert getattr(input_ids, MARK, None) == FAKE, "a batch ran that was not placed on the compute device"
        calls.append(input_ids.shape)
        return original(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(BortModel, "forward", checked)
    return calls


def _classifier(seed: int = 0) -> BortForSequenceClassification:
    torch.manual_seed(seed)
    return BortForSequenceClassification(BortConfig(**TINY_SHAPE, num_labels=2)).eval()


def _labelled_batches(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(5, 99, (2, 7), generator=generator),
            "attention_mask": torch.ones(2, 7, dtype=torch.long),
            "labels": torch.randint(0, 2, (2,), generator=generator),
        }
        for _ in range(n)
    ]


def test_to_device_moves_modules_tensors_and_containers():
    module = torch.nn.Linear(2, 2)
    assert _device.to_device(module, "cpu") is module
    moved = _device.to_device({"a": torch.zeros(1), "b": [torch.ones(1), 3], "c": "text"}, torch.device("cpu"))
    assert moved["a"].device.type == "cpu" and moved["b"][1] == 3 and moved["c"] == "text"
    assert isinstance(_device.to_device((torch.zeros(1),), "cpu"), tuple)


def test_compute_device_is_accelerates_partial_state():
    from accelerate import PartialState

    assert _device.compute_device() == PartialState().device


def test_search_candidates_teacher_and_batches_go_to_the_compute_device(fake_device):
    from hf_bort.ose.surrogate import CandidateTrainer

    teacher, student = _classifier(0), _classifier(1)
    trainer = CandidateTrainer(teacher, "task", _labelled_batches(2, 0), _labelled_batches(1, 1), learning_rate=1e-3)
    assert trainer.device == FAKE
    projection, optimizer = trainer.setup(student)
    trainer.train(student, projection, optimizer, 0, 2)
    error, metrics = trainer.evaluate(student, projection)
    assert error >= 0 and "dev_accuracy" in metrics
    assert len(fake_device) == 3 + 2 + 1  # teacher logits of 3 batches, 2 training steps, 1 evaluation batch


def test_compress_evaluation_runs_on_the_compute_device(fake_device, tmp_path):
    from hf_bort.compress import recipe

    tokenizer = bert_tokenizer(tmp_path / "tok")
    rows = [{"input_ids": [2, 10 + i, 11, 3], "attention_mask": [1, 1, 1, 1], "labels": i % 2} for i in range(5)]
    scores = recipe.evaluate(_classifier(), rows, tokenizer, batch_size=2)
    assert 0.0 <= scores["accuracy"] <= 1.0
    assert len(fake_device) == 3


def test_embedding_encode_runs_on_the_compute_device(fake_device, tmp_path):
    from hf_bort.compress.embedding_steps import encode

    class MeanHead(torch.nn.Module):
        def forward(self, hidden, mask):
            return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    tokenizer = bert_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    encoder = BortModel(BortConfig(**TINY_SHAPE), add_pooling_layer=False)
    embeddings = encode(encoder, MeanHead(), tokenizer, ["a b", "c d e", "f"], max_length=8, batch_size=2)
    assert embeddings.shape == (3, TINY_SHAPE["hidden_size"])
    assert len(fake_device) == 2


def test_agora_labeller_model_runs_on_the_compute_device(fake_device):
    from hf_bort.agora.labellers import ModelLabeller

    labeller = ModelLabeller(_classifier(), batch_size=2)
    result = labeller([{"input_ids": [2, 10 + i, 3]} for i in range(3)])
    assert len(result.labels) == 3
    assert len(fake_device) == 2


def test_compress_latency_is_timed_on_the_cpu(monkeypatch):
    """The `latency` stage moves the models back to the CPU, whatever the stages before used."""
    from hf_bort.compress import latency

    moves = []
    model = _classifier()
    original = torch.nn.Module.to

    def record(self, *args, **kwargs):
        if self is model:
            moves.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", record)
    out = latency.measure_latency({"source": model}, None, sequence_length=8, runs=2)
    assert moves == [("cpu",)]
    assert out["pytorch"]["source"]["p50_ms"] > 0
