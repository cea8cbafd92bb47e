from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

import hf_bort.exporters
from hf_bort import (
    BortConfig,
    BortForMaskedLM,
    BortForMultipleChoice,
    BortForQuestionAnswering,
    BortForSequenceClassification,
    BortForTokenClassification,
    BortModel,
)
from tiny_tokenizers import bert_tokenizer

pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("onnxruntime")

from hf_bort.exporters import OnnxValidationError, export_onnx, register_onnx
from hf_bort.exporters.cli import add_commands
from tiny_shapes import HETERO_SHAPE

TASK_CLASSES = {
    "feature-extraction": (BortModel, "last_hidden_state"),
    "fill-mask": (BortForMaskedLM, "logits"),
    "text-classification": (BortForSequenceClassification, "logits"),
    "token-classification": (BortForTokenClassification, "logits"),
    "question-answering": (BortForQuestionAnswering, "start_logits"),
    "multiple-choice": (BortForMultipleChoice, "logits"),
}


def _model(cls, **overrides):
    torch.manual_seed(0)
    return cls(BortConfig(**{**HETERO_SHAPE, **overrides})).eval()


@pytest.mark.parametrize("task", list(TASK_CLASSES))
def test_export_each_task_validates(tmp_path, task):
    cls, output = TASK_CLASSES[task]
    result = export_onnx(_model(cls), tmp_path / "out", task=task)
    assert result.task == task and result.model_type == "bort"
    assert output in result.outputs
    assert result.max_abs_diff < 1e-4
    assert result.attention_fused and result.fused_operators["Attention"] == 2  # every task head keeps the fusion
    assert (tmp_path / "out" / "model.onnx").is_file() and (tmp_path / "out" / "config.json").is_file()
    # heterogeneous per-layer shapes survive the round trip through config.json
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["num_attention_heads"] == [4, 2] and saved["intermediate_size"] == [37, 16]
    assert "token_type_ids" not in result.inputs


def test_task_inferred_and_token_types_follow_config(tmp_path):
    result = export_onnx(_model(BortForSequenceClassification, type_vocab_size=2), tmp_path / "out")
    assert result.task == "text-classification"
    assert "token_type_ids" in result.inputs


def test_registered_with_tasks_manager():
    from optimum.exporters.tasks import TasksManager

    config_class = register_onnx()
    tasks = TasksManager.get_supported_tasks_for_model_type("bort", "onnx", library_name="transformers")
    assert set(hf_bort.exporters.SUPPORTED_TASKS) <= set(tasks)
    assert config_class.__name__ == "BortOnnxConfig"


def test_int8_reports_agreement(tmp_path):
    result = export_onnx(_model(BortForSequenceClassification), tmp_path / "out", quantize="dynamic-int8")
    assert Path(result.quantized_path).is_file()
    assert 0.0 <= result.argmax_agreement <= 1.0
    assert result.argmax_agreement >= 0.9  # 16 sentences; a tiny model quantizes well
    assert result.int8_max_abs_diff > 0  # it really is a different (quantized) model
    with pytest.raises(OnnxValidationError, match="min_argmax_agreement"):
        export_onnx(
            _model(BortForSequenceClassification),
            tmp_path / "out2",
            quantize="dynamic-int8",
            min_argmax_agreement=1.01,
        )
    assert not (tmp_path / "out2").exists()


def test_validation_failure_reports_difference_and_leaves_nothing(tmp_path):
    with pytest.raises(OnnxValidationError, match=r"max abs difference .* exceeds atol=1e-30") as info:
        export_onnx(_model(BortModel), tmp_path / "out", atol=1e-30)
    assert info.value.max_abs_diff > 0
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary directory


def test_ortmodel_and_pipeline_load_export(tmp_path):
    from optimum.onnxruntime import ORTModelForQuestionAnswering, ORTModelForSequenceClassification
    from transformers import pipeline

    tokenizer = bert_tokenizer(tmp_path / "tok")
    model = _model(BortForSequenceClassification, pad_token_id=0)
    export_onnx(model, tmp_path / "cls", tokenizer=tokenizer, quantize="dynamic-int8")
    ort_model = ORTModelForSequenceClassification.from_pretrained(tmp_path / "cls")
    inputs = tokenizer(["the movie was good", "a dull plot"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).logits
    assert torch.allclose(ort_model(**inputs).logits, expected, atol=1e-4)
    classifier = pipeline("text-classification", model=ort_model, tokenizer=tokenizer)
    predictions = classifier(["the movie was good", "a dull plot"])
    assert [p["label"] for p in predictions] == [model.config.id2label[int(i)] for i in expected.argmax(-1)]
    quantized = ORTModelForSequenceClassification.from_pretrained(tmp_path / "cls", file_name="model_quantized.onnx")
    assert quantized(**inputs).logits.shape == expected.shape

    export_onnx(_model(BortForQuestionAnswering, pad_token_id=0), tmp_path / "qa", tokenizer=tokenizer)
    qa = ORTModelForQuestionAnswering.from_pretrained(tmp_path / "qa")
    assert qa(**inputs).start_logits.shape == inputs["input_ids"].shape


FUSION_SHAPES = {
    "uniform": dict(num_attention_heads=4, attention_head_size=None, intermediate_size=37, type_vocab_size=2),
    "per-layer-heads": dict(
        type_vocab_size=2
    ),  # HETERO_SHAPE: heads [4, 2] x 8 (inner width 32, then 16), FFN [37, 16]
    "no-token-types": dict(type_vocab_size=0),
    "wide-heads-3-layers": dict(
        num_hidden_layers=3, num_attention_heads=[4, 6, 1], attention_head_size=16, intermediate_size=[37, 16, 8]
    ),
    "roberta-positions": dict(num_attention_heads=4, type_vocab_size=1, position_embedding_type="roberta"),
    "factorized-embeddings": dict(embedding_size=16),
}


def _onnx_op_counts(path) -> dict[str, int]:
    import collections

    import onnx

    return dict(collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node))


@pytest.mark.parametrize("shape", list(FUSION_SHAPES))
def test_optimized_export_fuses_every_layer(tmp_path, shape):
    """ONNX Runtime's optimizer fuses one Attention per layer (uniform and per-layer heads, with or without token
    types), plus SkipLayerNormalization x2, BiasGelu and the embeddings; the fused model.onnx matches PyTorch."""
    model = _model(BortModel, **FUSION_SHAPES[shape])
    layers = model.config.num_hidden_layers
    result = export_onnx(model, tmp_path / "out")
    assert result.optimized and result.num_layers == layers and result.attention_fused
    fused = result.fused_operators
    assert fused["Attention"] == layers and fused["MultiHeadAttention"] == 0
    assert fused["SkipLayerNormalization"] == 2 * layers and fused["BiasGelu"] == layers
    assert fused["EmbedLayerNormalization"] == 1
    # the counts are those of the written graph, which ORTModel loads
    written = _onnx_op_counts(tmp_path / "out" / "model.onnx")
    assert written.get("Attention", 0) == layers
    assert "Softmax" not in written and "LayerNormalization" not in written
    assert result.max_abs_diff < 1e-4 and result.unoptimized_max_abs_diff < 1e-4
    assert sorted((tmp_path / "out").glob("*.onnx")) == [tmp_path / "out" / "model.onnx"]
    # and it matches PyTorch on inputs the validation did not use: left padding and a hole in the mask
    import onnxruntime

    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 99, (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :5] = 0
    attention_mask[1, 4:6] = 0
    attention_mask[2, 9:] = 0
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}
    feed = {item.name: feed[item.name].numpy() for item in session.get_inputs()}
    (got,) = session.run(["last_hidden_state"], feed)
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    keep = attention_mask.bool()
    assert torch.allclose(torch.from_numpy(got)[keep], expected[keep], atol=1e-4)


def test_optimize_false_writes_the_plain_graph(tmp_path):
    result = export_onnx(_model(BortModel), tmp_path / "out", optimize=False)
    assert not result.optimized and result.fused_operators == {} and result.attention_fused is None
    assert result.unoptimized_max_abs_diff is None and result.num_layers == 2
    written = _onnx_op_counts(tmp_path / "out" / "model.onnx")
    assert "Attention" not in written and written["Softmax"] == 2
    assert result.fusion_summary() == "not optimized (optimize=False)"
    with pytest.raises(TypeError, match="optimize"):
        export_onnx(_model(BortModel), tmp_path / "out2", optimize="O2")


def test_optimized_export_of_each_task_and_int8(tmp_path):
    """Task heads keep full fusion; int8 quantizes the fused graph and still agrees with PyTorch."""
    result = export_onnx(_model(BortForSequenceClassification), tmp_path / "cls", quantize="dynamic-int8")
    assert result.attention_fused and result.fused_operators["Attention"] == 2
    assert result.argmax_agreement >= 0.9
    assert "fused: Attention 2/2 layers" in result.fusion_summary()
    result = export_onnx(_model(BortForMultipleChoice), tmp_path / "mc")
    assert result.fused_operators["Attention"] == 2 and result.max_abs_diff < 1e-4


def test_optimizer_failure_keeps_the_plain_graph(tmp_path, monkeypatch):
    import hf_bort.exporters.optimize as optimize_module

    def broken(source, target):
        raise RuntimeError("no pattern matched")

    monkeypatch.setattr(optimize_module, "optimize_graph", broken)
    result = export_onnx(_model(BortModel), tmp_path / "out")
    assert not result.optimized and result.fused_operators == {}
    assert "no pattern matched" in result.extra["optimize_error"] and result.max_abs_diff < 1e-4
    assert "no pattern matched" in result.fusion_summary()


def test_bert_and_bort_of_the_same_shape_fuse_alike(tmp_path):
    torch.manual_seed(0)
    shape = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    bert = BertModel(BertConfig(**shape)).eval()
    bort = BortModel(
        BortConfig(**shape, type_vocab_size=2, position_embedding_type="absolute", max_position_embeddings=512)
    )
    bort.load_state_dict(bert.state_dict(), strict=False)
    fused_bert = export_onnx(bert, tmp_path / "bert").fused_operators
    fused_bort = export_onnx(bort.eval(), tmp_path / "bort").fused_operators
    assert fused_bort == fused_bert and fused_bort["Attention"] == 2


def test_source_encoders_use_the_same_exporter(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    ).eval()
    result = export_onnx(bert, tmp_path / "bert")
    assert result.model_type == "bert" and "token_type_ids" in result.inputs and result.max_abs_diff < 1e-4
    # a saved checkpoint path (with its tokenizer) works too
    bert.save_pretrained(tmp_path / "ckpt")
    bert_tokenizer(tmp_path / "tok").save_pretrained(tmp_path / "ckpt")
    result = export_onnx(tmp_path / "ckpt", tmp_path / "bert2", task="feature-extraction")
    assert (tmp_path / "bert2" / "tokenizer.json").is_file()
    assert result.num_validation_examples == len(hf_bort.exporters.VALIDATION_TEXTS)


def test_bad_task_and_quantize(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        export_onnx(_model(BortModel), tmp_path / "out", task="summarization")
    with pytest.raises(ValueError, match="quantize must be"):
        export_onnx(_model(BortModel), tmp_path / "out", quantize="int4")
    assert not (tmp_path / "out").exists()


def test_unsupported_model_type(tmp_path):
    torch.manual_seed(0)
    # DistilBERT is supported by optimum for feature-extraction; ask for a type optimum does not know.
    model = DistilBertModel(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=37))
    model.config.model_type = "not-a-real-type"
    with pytest.raises(ValueError, match="model_type 'not-a-real-type' cannot be exported"):
        export_onnx(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_dir_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match="output_dir .* is not writable"):
        export_onnx(_model(BortModel), tmp_path / "file" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="output_dir .* is not writable"):
            export_onnx(_model(BortModel), locked / "out")
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_non_empty_output_dir_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="output_dir .* is not empty"):
        export_onnx(_model(BortModel), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").is_file()
    export_onnx(_model(BortModel), tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "keep.txt").exists() and (tmp_path / "out" / "model.onnx").is_file()


def _parser():
    parser = argparse.ArgumentParser(prog="hf-bort")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_export(tmp_path, capsys):
    model = _model(BortForSequenceClassification, pad_token_id=0)
    model.save_pretrained(tmp_path / "ckpt")
    bert_tokenizer(tmp_path / "tok").save_pretrained(tmp_path / "ckpt")
    args = _parser().parse_args(
        [
            "export",
            str(tmp_path / "ckpt"),
            str(tmp_path / "onnx"),
            "--task",
            "text-classification",
            "--quantize",
            "dynamic-int8",
        ]
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] is not None
    assert report["optimized"] and report["fused_operators"]["Attention"] == 2
    assert "fused: Attention 2/2 layers" in captured.err
    assert (tmp_path / "onnx" / "model_quantized.onnx").is_file()
    args = _parser().parse_args(["export", str(tmp_path / "ckpt"), str(tmp_path / "plain"), "--no-optimize"])
    assert args.func(args) == 0
    assert not json.loads(capsys.readouterr().out)["optimized"]

    args = _parser().parse_args(["export", str(tmp_path / "ckpt"), str(tmp_path / "onnx")])
    assert args.func(args) == 2
    assert "not empty" in capsys.readouterr().err
    args = _parser().parse_args(["export", "x", "y", "--task", "summarization"])
    with pytest.raises(SystemExit):  # HfArgumentParser refuses the choice before any work
        args.func(args)
    assert "invalid choice: 'summarization'" in capsys.readouterr().err


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "contains", "symlink"])
def test_output_dir_overlapping_the_source_is_refused(tmp_path, where):
    source = tmp_path / "m"
    _model(BortModel).save_pretrained(source)
    before = _files(source)
    if where == "symlink":
        (tmp_path / "link").symlink_to(source, target_is_directory=True)
    output = {"same": source, "inside": source / "onnx", "contains": tmp_path, "symlink": tmp_path / "link"}[where]
    with pytest.raises(ValueError, match="output_dir .* the source folder model_or_path="):
        export_onnx(str(source), output, overwrite=True)
    assert _files(source) == before
    loaded = BortModel.from_pretrained(source)  # an in-memory model remembers its folder
    with pytest.raises(ValueError, match="the source folder model_or_path="):
        export_onnx(loaded, output, overwrite=True)
    assert _files(source) == before


def test_cli_export_into_its_own_source_keeps_the_source(tmp_path, capsys):
    source = tmp_path / "m"
    _model(BortModel).save_pretrained(source)
    args = _parser().parse_args(["export", str(source), str(source), "--overwrite"])
    assert args.func(args) == 2
    assert "the source folder" in capsys.readouterr().err
    assert (source / "model.safetensors").is_file() and not (source / "model.onnx").exists()


def test_overwrite_keeps_the_old_output_when_moving_the_new_one_in_fails(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old export")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.startswith(".out.tmp-"):  # the new export moving in: a kill / full disk here
            raise OSError("simulated failure while moving the new export in")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        export_onnx(_model(BortModel), tmp_path / "out", overwrite=True)
    monkeypatch.undo()
    assert _files(tmp_path / "out") == {"keep.txt": b"old export"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left behind


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporary_folders_of_killed_exports_are_cleaned(tmp_path):
    from hf_bort._outputs import _HOST

    pid = _dead_pid()
    stale = tmp_path / f".out.tmp-{_HOST}-{pid}-abc123"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"partial")
    live = tmp_path / f".out.tmp-{_HOST}-{os.getppid()}-def456"  # a running process: maybe an export in progress
    live.mkdir()
    foreign = tmp_path / ".out.tmp-not-ours"  # not a name we create
    foreign.mkdir()
    legacy_old, legacy_new = tmp_path / ".out.tmp-ab12cd_3", tmp_path / ".out.tmp-ef34gh_5"  # before owner names
    legacy_old.mkdir()
    legacy_new.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(legacy_old, (two_days_ago, two_days_ago))
    export_onnx(_model(BortModel), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name, legacy_new.name, "out"])


def test_folder_set_aside_by_a_killed_replacement_is_restored(tmp_path):
    from hf_bort._outputs import _HOST

    # Killed between "rename the old aside" and "move the new in": only the aside copy holds the old export.
    aside = tmp_path / f".out.old-{_HOST}-{_dead_pid()}-abc123"
    aside.mkdir()
    (aside / "keep.txt").write_text("old export")
    with pytest.raises(ValueError, match="not empty"):
        export_onnx(_model(BortModel), tmp_path / "out")
    assert _files(tmp_path / "out") == {"keep.txt": b"old export"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_task_head_missing_from_the_checkpoint_is_refused(tmp_path, capsys):
    _model(BortModel).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match="task 'text-classification'.*classifier.weight"):
        export_onnx(str(tmp_path / "encoder"), tmp_path / "out", task="text-classification")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]
    args = _parser().parse_args(["export", str(tmp_path / "encoder"), str(tmp_path / "out"), "--task", "fill-mask"])
    assert args.func(args) == 2
    assert "cls.predictions" in capsys.readouterr().err
    # A masked-LM checkpoint has no pooler: fine for feature-extraction, whose output does not use it.
    _model(BortForMaskedLM).save_pretrained(tmp_path / "mlm")
    assert export_onnx(str(tmp_path / "mlm"), tmp_path / "out").max_abs_diff < 1e-4
