from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertModel

from hf_bort.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_tokenizers import bert_tokenizer  # noqa: E402


def test_convert_command(tmp_path, capsys):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    BertForMaskedLM(config).save_pretrained(tmp_path / "src")
    bert_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "src")
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class"] == "BortForMaskedLM" and report["max_abs_difference"] < 1e-5
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "dst")).__name__ == "BortForMaskedLM"
    assert (tmp_path / "dst" / "vocab.txt").is_file() or (tmp_path / "dst" / "tokenizer.json").is_file()


def test_convert_command_rejects_unsupported_type(tmp_path, capsys):
    DistilBertModel(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=37)).save_pretrained(
        tmp_path / "distil"
    )
    assert main(["convert", str(tmp_path / "distil"), str(tmp_path / "dst")]) == 2
    assert "Supported model types" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()


def test_count_command(capsys):
    assert main(["count", "bort-paper"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 55_350_016
