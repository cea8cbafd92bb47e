from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from hf_bort.agora.cli import add_commands
from tiny_tokenizers import WORDS, bert_tokenizer


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
            "--model-name-or-path", str(tmp_path / "student"),
            "--labeller-name-or-path", str(tmp_path / "labeller"),
            "--train-file", str(tmp_path / "train.jsonl"),
            "--dev-file", str(tmp_path / "dev.jsonl"),
            "--test-file", str(tmp_path / "dev.jsonl"),
            "--output-dir", str(tmp_path / "out"),
            "--agora-rounds", "1",
            "--agora-sampler", "text",
            "--per-device-train-batch-size", "4",
            "--use-cpu", "true",
            "--report-to", "none",
            "--save-strategy", "no",
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


def _required(tmp_path) -> list[str]:
    return ["--labeller-name-or-path", "lab", "--train-file", "t.jsonl", "--dev-file", "d.jsonl"]


def test_dashed_flags_and_field_name_aliases_parse_alike(tmp_path):
    from hf_bort.agora.cli import parse

    dashed = parse(["--model-name-or-path", "m", *_required(tmp_path), "--output-dir", "out", "--agora-rounds", "2"])
    field_names = parse(
        ["--model_name_or_path", "m", "--labeller_name_or_path", "lab", "--train_file", "t.jsonl"]
        + ["--dev_file", "d.jsonl", "--output_dir", "out", "--agora_rounds", "2"]
    )
    assert dashed[0].model_name_or_path == field_names[0].model_name_or_path == "m"
    assert dashed[0].train_file == field_names[0].train_file == "t.jsonl"
    assert dashed[1].output_dir == field_names[1].output_dir == "out"
    assert dashed[1].agora_rounds == field_names[1].agora_rounds == 2


def test_help_lists_the_commands_own_options_first(capsys):
    from hf_bort.cli import main

    assert main(["agora", "--help"]) == 0
    short = capsys.readouterr().out
    assert short.index("--model-name-or-path") < short.index("--agora-rounds") < short.index("--output-dir")
    assert "--adam-beta1" not in short and "--help-all" in short  # the rest of TrainingArguments: --help-all
    assert main(["agora", "--help-all"]) == 0
    everything = capsys.readouterr().out
    assert "--adam-beta1" in everything and "--agora-rounds" in everything
    assert "usage: hf-bort agora [-h] --model-name-or-path" in short.replace("\n", " ")


def test_config_file_with_command_line_overrides(tmp_path):
    from hf_bort.agora.cli import parse

    (tmp_path / "agora.yaml").write_text(
        "model_name_or_path: m\nlabeller_name_or_path: lab\ntrain_file: t.jsonl\ndev_file: d.jsonl\n"
        "output_dir: from-file\nagora_rounds: 5\nagora_sampler: text\nlearning_rate: 3.0e-5\nuse_cpu: true\n"
    )
    cli, config = parse(["--config", str(tmp_path / "agora.yaml"), "--output-dir", str(tmp_path / "cli")])
    assert cli.model_name_or_path == "m" and cli.dev_file == "d.jsonl"
    assert config.agora_rounds == 5 and config.agora_sampler == "text" and config.learning_rate == 3e-5
    assert config.use_cpu is True and config.output_dir == str(tmp_path / "cli")  # the command line wins


def test_config_file_with_an_unknown_key_names_it(tmp_path):
    from hf_bort.cli import main

    (tmp_path / "agora.json").write_text(json.dumps({"model_name_or_path": "m", "agora_roundz": 2}))
    with pytest.raises(ValueError, match="unknown key.*agora_roundz"):
        from hf_bort.agora.cli import parse

        parse(["--config", str(tmp_path / "agora.json")])
    assert main(["agora", "--config", str(tmp_path / "agora.json")]) == 2


@pytest.mark.parametrize("word", ["True", "true", "last", "LAST"])
def test_resume_true_or_last_means_the_newest_complete_checkpoint(tmp_path, word):
    """`--resume-from-checkpoint True` used to be read as a folder named 'True' (FileNotFoundError)."""
    from hf_bort.agora.callback import STATE_NAME
    from hf_bort.agora.cli import parse
    from hf_bort.agora.trainer import TRAINER_STATE_NAME, resolve_resume_checkpoint

    out = tmp_path / "out"
    _, config = parse(["--model-name-or-path", "m", *_required(tmp_path), "--output-dir", str(out)]
                      + ["--resume-from-checkpoint", word])  # fmt: skip
    assert config.resume_from_checkpoint is True
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        resolve_resume_checkpoint(word, str(out))
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = out / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / STATE_NAME).write_text("{}")
        if complete:
            (folder / TRAINER_STATE_NAME).write_text("{}")
    assert resolve_resume_checkpoint(word, str(out)) == str(out / "checkpoint-4")
    assert resolve_resume_checkpoint(config.resume_from_checkpoint, str(out)) == str(out / "checkpoint-4")


def test_resume_true_on_the_command_line_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    from hf_bort.cli import main

    BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4).save_pretrained(tmp_path)
    argv = ["agora", "--model_name_or_path", str(tmp_path), "--labeller_name_or_path", str(tmp_path)]
    argv += ["--train_file", "t.jsonl", "--dev_file", "d.jsonl", "--output_dir", str(tmp_path / "out")]
    argv += ["--resume_from_checkpoint", "True", "--use_cpu", "true", "--report_to", "none"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "no complete checkpoint" in error and "does not exist" not in error


def test_resume_false_is_a_fresh_run(tmp_path):
    from hf_bort.agora.cli import parse

    _, config = parse(["--model-name-or-path", "m", *_required(tmp_path), "--resume-from-checkpoint", "False"])
    assert config.resume_from_checkpoint is None


def test_a_data_file_that_is_not_utf8_is_named_before_any_model_loads(tmp_path, capsys):
    from hf_bort.cli import main

    BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4).save_pretrained(tmp_path)
    _write(tmp_path / "train.jsonl", 4, 0)
    (tmp_path / "test.jsonl").write_bytes(b'{"text": "fine", "label": 0}\n{"text": "caf\xe9", "label": 1}\n')
    argv = ["agora", "--model_name_or_path", str(tmp_path), "--labeller_name_or_path", str(tmp_path)]
    argv += ["--train_file", str(tmp_path / "train.jsonl"), "--dev_file", str(tmp_path / "train.jsonl")]
    argv += ["--test_file", str(tmp_path / "test.jsonl"), "--output_dir", str(tmp_path / "out"), "--use_cpu", "true"]
    assert main(argv) == 2  # the test file used to be read after all the training
    assert "test_file: '" in (error := capsys.readouterr().err) and "test.jsonl' is not valid UTF-8: line 2" in error
