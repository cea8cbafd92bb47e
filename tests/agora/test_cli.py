from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from hf_bort.agora.cli import add_commands

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_tokenizers import WORDS, bert_tokenizer  # noqa: E402


def _write(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(5))
        rows.append({"text": text, "label": int("good" in text or "great" in text)})
    path.write_text("\n".join(json.dumps(r) for r in rows))


def test_agora_command_trains_and_reports(tmp_path, capsys):
    tokenizer = bert_tokenizer(tmp_path / "student")
    for name, seed in (("student", 0), ("labeller", 1)):
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
        )
        BertForSequenceClassification(config).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    _write(tmp_path / "train.jsonl", 12, 0)
    _write(tmp_path / "dev.jsonl", 12, 1)
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "agora",
            "--model_name_or_path", str(tmp_path / "student"),
            "--labeller_name_or_path", str(tmp_path / "labeller"),
            "--train_file", str(tmp_path / "train.jsonl"),
            "--dev_file", str(tmp_path / "dev.jsonl"),
            "--test_file", str(tmp_path / "dev.jsonl"),
            "--output_dir", str(tmp_path / "out"),
            "--agora_rounds", "1",
            "--agora_sampler", "text",
            "--per_device_train_batch_size", "4",
            "--use_cpu", "true",
            "--report_to", "none",
            "--save_strategy", "no",
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [h["round"] for h in report["history"]] == [1]
    assert 0.0 <= report["test"]["test_accuracy"] <= 1.0
    assert (tmp_path / "out" / "config.json").is_file()


def test_a_missing_resume_checkpoint_is_an_error_before_anything_loads(tmp_path):
    from hf_bort.cli import main

    missing = tmp_path / "nonexistent"
    argv = ["agora", "--model_name_or_path", str(tmp_path / "no-model"), "--labeller_name_or_path", "x"]
    argv += ["--train_file", "t.jsonl", "--dev_file", "d.jsonl", "--output_dir", str(tmp_path / "out")]
    argv += ["--resume_from_checkpoint", str(missing), "--use_cpu", "true", "--report_to", "none"]
    assert main(argv) == 2  # used to be ignored: trained from scratch and exited 0
