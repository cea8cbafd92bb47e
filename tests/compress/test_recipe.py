"""The latency step (`compress/latency.py`): PyTorch and fused ONNX Runtime timings of source and student in one run;
the recipe's Trainer settings."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from hf_bort import BortConfig, BortForSequenceClassification
from hf_bort.compress import latency, recipe
from tiny_shapes import TINY_SHAPE


def test_latency_of_source_and_student_with_fused_onnx(tmp_path, bert_tok):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    torch.manual_seed(0)
    source = BertForSequenceClassification(BertConfig(**TINY_SHAPE)).eval()
    student = BortForSequenceClassification(
        BortConfig(**{**TINY_SHAPE, "num_hidden_layers": 2, "num_attention_heads": [4, 2], "attention_head_size": 8})
    ).eval()
    record = latency.measure_latency(
        {"source": source, "student": student}, bert_tok, sequence_length=16, runs=5, onnx_dir=tmp_path / "onnx"
    )
    for engine in ("pytorch", "onnxruntime_fp32"):
        assert record[engine]["source"]["ratio_to_source"] == 1.0
        assert record[engine]["student"]["p50_ms"] > 0 and record[engine]["student"]["runs"] == 5
    assert record["onnx_fused_operators"]["student"]["Attention"] == 2  # per-layer heads fused too
    assert record["onnx_fused_operators"]["source"]["Attention"] == 2
    assert max(record["onnx_max_abs_diff_vs_pytorch"].values()) < 1e-4


def test_trainer_settings_pin_memory_only_for_cuda(tmp_path, recwarn):
    """On the CPU the recipe's dataloaders are not pinned: torch would warn on every one of them."""
    settings = recipe._trainer_settings(0, tmp_path, show_progress=False)
    assert settings["dataloader_pin_memory"] is torch.cuda.is_available()
    from transformers import Trainer, TrainingArguments

    model = BertForSequenceClassification(
        BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    )
    rows = [{"input_ids": [1, 2, 3], "labels": 0}] * 4
    trainer = Trainer(model=model, args=TrainingArguments(**settings), train_dataset=rows)
    next(iter(trainer.get_train_dataloader()))
    assert not [w for w in recwarn if "pin_memory" in str(w.message)]


def test_latency_helpers_stay_importable_from_recipe():
    """They moved to `compress/latency.py`; `from hf_bort.compress.recipe import measure_latency` still works."""
    from hf_bort.compress.recipe import machine_info, measure_latency, time_interleaved

    assert (machine_info, measure_latency, time_interleaved) == (
        latency.machine_info,
        latency.measure_latency,
        latency.time_interleaved,
    )
