"""The `qat` stage (issue 23): simulated ONNX Runtime dynamic int8 on every nn.Linear, and quantization-aware task
distillation in compress (compress/qat.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_bort import CompressionConfig, compress
from hf_bort.compress.qat import (
    DynamicInt8Simulation,
    fake_quantize_activation,
    fake_quantize_weight,
    simulate_dynamic_int8,
)
from tiny_int8 import needs_onnx, outlier_model
from tiny_tasks import fast_settings


def _inputs():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 99, (6, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def test_weights_on_onnx_runtimes_symmetric_grids():
    weight = torch.tensor([[1.0, 0.5, -0.25], [0.0, 0.0, 0.0], [-2.0, 0.3, 1.0]])
    int8 = fake_quantize_weight(weight, DynamicInt8Simulation("int8"))
    assert torch.allclose(int8[0], torch.round(weight[0] * 127) / 127)  # per row: scale absmax / 127
    assert torch.allclose(int8[2], torch.round(weight[2] / 2 * 127) * 2 / 127)
    assert torch.equal(int8[1], weight[1])  # an all-zero channel stays zero
    uint8 = fake_quantize_weight(weight, DynamicInt8Simulation("uint8"))  # avx2: zero point 128, scale 2·absmax/255
    assert uint8[0, 0] == pytest.approx(127 * 2 / 255) and uint8[0, 2] == pytest.approx(-32 * 2 / 255)
    reduced = fake_quantize_weight(weight, DynamicInt8Simulation("int8", reduce_range=True))
    assert torch.allclose(reduced[0], torch.round(weight[0] * 64) / 64)
    per_tensor = fake_quantize_weight(weight, DynamicInt8Simulation("int8", per_channel=False))
    assert torch.allclose(per_tensor[0], torch.round(weight[0] / 2 * 127) * 2 / 127)  # one scale: absmax 2
    assert DynamicInt8Simulation.for_target("avx2").weight_type == "uint8"
    assert DynamicInt8Simulation.for_target("avx512_vnni").weight_type == "int8"


def test_activations_take_one_asymmetric_uint8_scale_from_the_whole_tensor():
    value = torch.tensor([[-1.0, 0.0, 3.0], [0.7, 2.0, 1.1]])
    scale = 4.0 / 255
    zero = round(1.0 / scale)
    expected = (torch.clamp(torch.round(value / scale) + zero, 0, 255) - zero) * scale
    assert torch.allclose(fake_quantize_activation(value), expected)
    positive = torch.tensor([0.5, 2.0])  # the range always holds 0
    assert torch.allclose(fake_quantize_activation(positive), torch.round(positive / (2 / 255)) * (2 / 255))


@needs_onnx
def test_simulation_matches_onnx_runtime_dynamic_int8_closer_than_fp32(tmp_path):
    from hf_bort.exporters import Int8Config, export_onnx
    from hf_bort.exporters.quantize import QUANTIZED_NAME, run_onnx

    model = outlier_model()
    inputs = _inputs()
    result = export_onnx(
        model, tmp_path / "out", quantize="dynamic-int8", int8=Int8Config(target="avx512_vnni", threads=1)
    )
    assert result.quantization["chosen"] == "dynamic-int8"
    feed = {name: value.numpy() for name, value in inputs.items()}
    ort_int8 = run_onnx(tmp_path / "out" / QUANTIZED_NAME, feed, ["logits"], threads=1)["logits"]
    fp32 = _logits(model, inputs).numpy()
    with simulate_dynamic_int8(model, DynamicInt8Simulation.for_target("avx512_vnni")):
        simulated = _logits(model, inputs).numpy()
    fp32_error, simulated_error = np.abs(fp32 - ort_int8).max(), np.abs(simulated - ort_int8).max()
    assert fp32_error > 1e-3  # int8 does change these logits
    assert simulated_error < 0.01 * fp32_error, (simulated_error, fp32_error)  # measured: 1.5e-8 vs 1.5e-3


def test_removal_leaves_the_plain_model_which_round_trips(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = outlier_model()
    inputs = _inputs()
    structure, keys, fp32 = str(model), list(model.state_dict()), _logits(model, inputs)
    handle = simulate_dynamic_int8(model)
    assert len(handle.modules) == 2 * 6 + 2  # q, k, v, attention output, FFN in / out per layer; pooler, classifier
    simulated = _logits(model, inputs)
    assert not torch.allclose(simulated, fp32, atol=1e-4)
    assert list(model.state_dict()) == keys  # parameters untouched: the Trainer's checkpoints are plain
    with pytest.raises(ValueError, match="already"):
        simulate_dynamic_int8(model)
    handle.remove()
    assert str(model) == structure and list(model.state_dict()) == keys
    assert not any("forward" in module.__dict__ for module in model.modules())
    assert torch.equal(_logits(model, inputs), fp32)
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    assert str(loaded) == structure and torch.allclose(_logits(loaded, inputs), fp32, atol=1e-6)


def test_gradients_pass_straight_through_the_rounding():
    model = outlier_model().train()
    with simulate_dynamic_int8(model):
        model(**_inputs(), labels=torch.tensor([0, 1, 0, 1, 1, 0])).loss.backward()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in linears)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(qat_steps=-1), "qat_steps"),
        (dict(qat_steps=2.5), "qat_steps"),
        (dict(qat_steps=True), "qat_steps"),
        (dict(qat_steps=10, qat_learning_rate=0.0), "qat_learning_rate"),
        (dict(qat_steps=10, task="feature-extraction"), "qat_steps"),
        (dict(qat_steps=10, qat_target="student"), "qat_target"),
        (dict(qat_target=None), "qat_target"),
    ],
)
def test_config_errors_name_the_field(tmp_path, overrides, field):
    with pytest.raises(ValueError, match=field):
        CompressionConfig(model="m", dataset="d", output_dir=str(tmp_path / "o"), measure_onnx=False, **overrides)


def test_simulation_settings_are_checked():
    with pytest.raises(ValueError, match="weight_type"):
        DynamicInt8Simulation("int4")
    with pytest.raises(ValueError, match="target"):
        DynamicInt8Simulation.for_target("sse4")
    with pytest.raises(ValueError, match="nn.Linear"):
        simulate_dynamic_int8(torch.nn.Sequential(torch.nn.ReLU()))


def test_qat_stage_runs_in_compress_and_is_recorded(tmp_path, tiny_source, data_dir):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "out"
    config = CompressionConfig(
        model=str(tiny_source),
        dataset=str(data_dir),
        output_dir=str(out),
        **fast_settings(qat_steps=6, qat_learning_rate=1e-3, reload_check=False, evaluate_test=False),
    )
    result = compress(config)
    progress = json.loads((out / "progress.json").read_text())
    assert list(progress["stages"]).index("qat") == list(progress["stages"]).index("augment") + 1  # after `augment`
    record = progress["stages"]["qat"]
    assert record["steps"] == 6 and record["training"]["steps"] == 6 and record["training"]["max_steps"] == 6
    assert [check["step"] for check in record["training"]["dev_per_epoch"]] == [2, 4, 6]  # every ceil(6 / 4) steps
    assert record["kept"] in ("qat", "before") and record["simulation"]["weight_range"] in ([-127, 127], [0, 255])
    assert set(record["dev_simulated_int8_before"]) == {
        "accuracy",
        "macro_f1",
        "int8_fp32_agreement",
        "agreement_then_accuracy",
    }
    assert record["dev"]["rows"] == 32 and record["target"] == "teacher" and record["criterion"] == "macro_f1"
    assert record["training"]["dev_at_start"] == record["dev_simulated_int8_before"]  # scored in the checks' batches
    report = result.report
    assert report["qat"] == record
    student = report["student"]
    assert student["quantization_aware_training"] == record and student["dev"] == record["dev"]
    assert student["dev_before_qat"] == progress["stages"]["task"]["dev"]
    assert (out / "student-task" / "model.safetensors").is_file()
    loaded = AutoModelForSequenceClassification.from_pretrained(out / "student").eval()
    before = AutoModelForSequenceClassification.from_pretrained(out / "student-task").eval()
    changed = any(
        not torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), before.state_dict().values(), strict=True)
    )
    assert changed == (record["kept"] == "qat")
    assert not any("forward" in module.__dict__ for module in loaded.modules())
    card = (out / "student" / "README.md").read_text()
    assert "Quantization-aware training" in card and "6 steps" in card and "the same distillation" in card


def test_qat_keeps_the_starting_weights_when_no_check_beats_them(tmp_path, tiny_source, data_dir, bert_tok):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_bort.compress import recipe
    from hf_bort.compress.qat import quantization_aware_distillation
    from hf_bort.data import load_task_data

    del bert_tok
    config = CompressionConfig(
        model=str(tiny_source), dataset=str(data_dir), output_dir=str(tmp_path / "o"), measure_onnx=False
    )
    data = load_task_data(config, model_label2id=None, model_num_labels=None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_source)
    train, dev = (recipe.tokenise(split, tokenizer, 16) for split in (data.train, data.validation))
    teacher = recipe.classifier_from_encoder(str(tiny_source), data.label_names, 0).eval()
    student = AutoModelForSequenceClassification.from_pretrained(tiny_source, num_labels=2)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    record = quantization_aware_distillation(
        student,
        teacher,
        train,
        dev,
        tokenizer,
        steps=2,
        learning_rate=1e-12,  # no check can differ from the start: the start is kept, said so
        batch_size=16,
        seed=0,
        work_dir=tmp_path / "work",
        show_progress=False,
    )
    assert record["kept"] == "before" and "unchanged" in record["why"]
    assert record["dev_simulated_int8"] == record["dev_simulated_int8_before"]
    assert all(torch.equal(value, start[name]) for name, value in student.state_dict().items())
    assert not any("forward" in module.__dict__ for module in student.modules())


def test_the_task_student_is_kept_once_for_a_resumed_stage(tmp_path):
    from hf_bort.compress.qat import keep_task_student

    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "weights").write_text("task")
    kept = keep_task_student(tmp_path)
    (tmp_path / "student" / "weights").write_text("half-written by a killed qat stage")
    assert keep_task_student(tmp_path) == kept and (kept / "weights").read_text() == "task"
    assert not (tmp_path / "student-task.tmp").exists()


def test_qat_trains_on_text_pairs(tmp_path, tiny_source, monkeypatch):
    import random

    from datasets import Dataset, DatasetDict

    from hf_bort.compress import qat
    from tiny_tasks import FILLER, make_rows

    def rows(n, seed):
        rng = random.Random(seed)
        return [
            {"premise": " ".join(rng.choice(FILLER) for _ in range(3)), "hypothesis": r["text"], "label": r["label"]}
            for r in make_rows(n, seed)
        ]

    data = DatasetDict(
        {name: Dataset.from_list(rows(n, s)) for name, n, s in (("train", 64, 0), ("validation", 32, 1))}
    )
    seen = []
    real = qat.quantization_aware_distillation

    def spy(student, teacher, train_rows, *args, **kwargs):
        seen.append(any(1 in row for row in train_rows["token_type_ids"]))  # the second text of each pair
        return real(student, teacher, train_rows, *args, **kwargs)

    monkeypatch.setattr(qat, "quantization_aware_distillation", spy)
    config = CompressionConfig(
        model=str(tiny_source),
        dataset=data,
        output_dir=str(tmp_path / "out"),
        text_column="premise",
        text_pair_column="hypothesis",
        **fast_settings(qat_steps=2, qat_target="self", reload_check=False, evaluate_test=False),
    )
    report = compress(config).report
    assert seen == [True] and report["qat"]["steps"] == 2 and report["student"]["quantization_aware_training"]
    assert report["qat"]["target"] == "self" and report["qat"]["criterion"] == "agreement_then_accuracy"
    card = (tmp_path / "out" / "student" / "README.md").read_text()
    assert "towards the student's own fp32 logits" in card and "dev agreement with fp32" in card


def _qat_inputs(tmp_path, tiny_source, data_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_bort.compress import recipe
    from hf_bort.data import load_task_data

    config = CompressionConfig(
        model=str(tiny_source), dataset=str(data_dir), output_dir=str(tmp_path / "o"), measure_onnx=False
    )
    data = load_task_data(config, model_label2id=None, model_num_labels=None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_source)
    train, dev = (recipe.tokenise(split, tokenizer, 16) for split in (data.train, data.validation))
    teacher = recipe.classifier_from_encoder(str(tiny_source), data.label_names, 0).eval()
    torch.manual_seed(1)
    student = AutoModelForSequenceClassification.from_pretrained(tiny_source, num_labels=2)
    return student, teacher, train, dev, tokenizer


def test_self_target_distils_towards_the_frozen_starting_student(tmp_path, tiny_source, data_dir, monkeypatch):
    from hf_bort.compress import recipe
    from hf_bort.compress.qat import quantization_aware_distillation

    student, teacher, train, dev, tokenizer = _qat_inputs(tmp_path, tiny_source, data_dir)
    start = {name: value.clone() for name, value in student.state_dict().items()}
    calls = []
    real = recipe.finetune

    def spy(model, *args, **kwargs):
        calls.append((kwargs["teacher"], kwargs["best_metric"]))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(recipe, "finetune", spy)
    records = {}
    for target in ("teacher", "self"):
        student.load_state_dict(start)
        records[target] = quantization_aware_distillation(
            student, teacher, train, dev, tokenizer, steps=3, learning_rate=1e-3, batch_size=16, seed=0,
            work_dir=tmp_path / target, show_progress=False, target=target,
        )  # fmt: skip
    (given, metric_teacher), (own, metric_self) = calls
    assert given is teacher and metric_teacher == "macro_f1"
    assert own is not teacher and own is not student and metric_self == "agreement_then_accuracy"
    assert all(torch.equal(value, start[name]) for name, value in own.state_dict().items())  # frozen start
    assert not any(parameter.requires_grad for parameter in own.parameters())
    assert records["self"]["criterion"] == "agreement_then_accuracy" and records["self"]["target"] == "self"
    assert records["self"]["training"]["train_loss"] != records["teacher"]["training"]["train_loss"]
    assert 0.0 <= records["self"]["dev_simulated_int8"]["int8_fp32_agreement"] <= 1.0
    with pytest.raises(ValueError, match="target"):
        quantization_aware_distillation(
            student, teacher, train, dev, tokenizer, steps=1, learning_rate=1e-3, batch_size=16, seed=0,
            work_dir=tmp_path / "x", target="student",
        )  # fmt: skip


def test_agreement_metric_matches_reordered_trainer_rows_to_the_same_weights_fp32(tmp_path, tiny_source, data_dir):
    from transformers import EvalPrediction

    from hf_bort.compress import recipe
    from hf_bort.compress.qat_agreement import Int8Fp32Agreement

    student, _, _, dev, tokenizer = _qat_inputs(tmp_path, tiny_source, data_dir)
    student.eval()
    scores = Int8Fp32Agreement(student, dev, tokenizer)
    with torch.no_grad():
        for parameter in student.parameters():  # the check's weights differ from those the copy was made of
            parameter.add_(0.05 * torch.randn_like(parameter))
    order = list(range(len(dev)))[::-1]  # the Trainer's dev order is not the dataset's
    batches = recipe._batches(dev.select(order), tokenizer, 8)
    with torch.no_grad():
        logits = torch.cat([student(**{k: v for k, v in b.items() if k != "labels"}).logits for b in batches])
    width = max(b["input_ids"].shape[1] for b in batches)
    inputs = torch.cat([torch.nn.functional.pad(b["input_ids"], (0, width - b["input_ids"].shape[1]), value=-100)
                        for b in batches])  # fmt: skip
    labels = np.asarray(dev.select(order)["labels"])
    same = scores(EvalPrediction(predictions=logits.numpy(), label_ids=labels, inputs=inputs.numpy()))
    assert same["int8_fp32_agreement"] == 1.0
    flipped = logits.numpy().copy()
    flipped[0] = flipped[0][::-1]  # one row's prediction changes (two classes)
    assert flipped[0].argmax() != logits[0].argmax()
    one_off = scores(EvalPrediction(predictions=flipped, label_ids=labels, inputs=inputs.numpy()))
    assert one_off["int8_fp32_agreement"] == pytest.approx(1 - 1 / len(dev))


def test_the_agreement_criterion_keeps_the_check_with_higher_agreement():
    from types import SimpleNamespace

    from hf_bort.compress.best_dev import best_epoch_record
    from hf_bort.compress.qat_agreement import agreement_then_accuracy

    def entry(step, agreement, accuracy):
        mix = agreement_then_accuracy(agreement, accuracy, 500)
        return {"epoch": step / 10, "step": step, "eval_accuracy": accuracy, "eval_macro_f1": accuracy,
                "eval_int8_fp32_agreement": agreement, "eval_agreement_then_accuracy": mix}  # fmt: skip

    history = [entry(0, 0.990, 0.87), entry(1, 0.992, 0.90), entry(2, 0.996, 0.86), entry(3, 0.996, 0.88)]
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=history, max_steps=3))
    by_agreement = best_epoch_record(trainer, "agreement_then_accuracy")
    assert by_agreement["best_step"] == 3  # highest agreement, tie broken by accuracy
    assert by_agreement["dev_at_start"]["int8_fp32_agreement"] == 0.990
    assert best_epoch_record(trainer, "accuracy")["best_step"] == 1
