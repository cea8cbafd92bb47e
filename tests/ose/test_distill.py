from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    TrainerCallback,
)

from hf_bort import convert_to_bort
from hf_bort.ose import (
    Candidate,
    DistillationConfig,
    DistillationTrainer,
    bort_distillation_loss,
    compute_importance,
    extract_subnetwork,
    hidden_state_loss,
    kd_loss,
    make_projection,
    task_distillation_loss,
)
from tiny_shapes import TINY_SHAPE


def test_kd_loss_is_zero_for_equal_logits_and_matches_the_formula():
    logits = torch.randn(5, 11)
    assert kd_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(5, 11)
    t = 2.0
    p = torch.softmax(logits / t, -1)
    expected = (p * (torch.log(p) - torch.log_softmax(student / t, -1))).sum(-1).mean() * t * t
    assert kd_loss(student, logits, t).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="`temperature`"):
        kd_loss(student, logits, 0.0)


def test_bort_recipe_weights():
    student, teacher = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    labels = torch.tensor([[1, -100, 2], [-100, -100, 6]])
    keep = labels.view(-1) != -100
    ce = torch.nn.functional.cross_entropy(student.view(-1, 7)[keep], labels.view(-1)[keep])
    kd = kd_loss(student.view(-1, 7)[keep], teacher.view(-1, 7)[keep], 2.0)
    assert bort_distillation_loss(student, teacher, labels).item() == pytest.approx((0.1 * ce + 0.5 * kd).item())


def test_hidden_state_loss_with_dimension_embedding_projection():
    teacher = torch.randn(2, 4, 6)
    dims = [0, 2, 5]
    student = teacher[..., dims]
    projection = make_projection(3, 6, dims)
    loss = hidden_state_loss(student, teacher, projection=projection)
    kept = (teacher[..., [1, 3, 4]] ** 2).sum() / (teacher**2).sum()
    assert loss.item() == pytest.approx(kept.item(), rel=1e-5)
    with pytest.raises(ValueError, match="pass a `projection`"):
        hidden_state_loss(student, teacher)


def _dataset(tokenizer, texts):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts}).map(
        lambda row: tokenizer(row["text"], truncation=True, max_length=16), remove_columns=["text"]
    )


@pytest.mark.parametrize("mlm", [True, False])
def test_distillation_trainer_moves_weights(tmp_path, bert_tok, texts, calibration, mlm):
    torch.manual_seed(0)
    teacher = convert_to_bort(BertForMaskedLM(BertConfig(**TINY_SHAPE)).eval())
    if not mlm:
        teacher = teacher.bort
    scores = compute_importance(teacher, calibration)
    student = extract_subnetwork(teacher, Candidate(1, 2, 24, 16, 8), scores)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    args = DistillationConfig(
        str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    collator = DataCollatorForLanguageModeling(bert_tok) if mlm else DataCollatorWithPadding(bert_tok)
    trainer = DistillationTrainer(
        model=student, teacher=teacher, args=args, train_dataset=_dataset(bert_tok, texts), data_collator=collator
    )
    assert trainer.use_logits is mlm and (trainer.projection is None) is mlm
    projection_before = None if mlm else trainer.projection.weight.detach().clone()
    trainer.train()
    moved = [k for k, v in student.state_dict().items() if not torch.equal(v, before[k])]
    assert any("encoder.layer.0" in k for k in moved)
    if not mlm:
        assert not torch.equal(trainer.projection.weight, projection_before)


def test_distillation_config_validation(tmp_path):
    with pytest.raises(ValueError, match="`temperature`"):
        DistillationConfig(str(tmp_path), temperature=0.0, report_to=[])
    with pytest.raises(ValueError, match="`alpha_kd`"):
        DistillationConfig(str(tmp_path), alpha_kd=-1.0, report_to=[])
    with pytest.raises(ValueError, match="`mlm_probability`"):
        DistillationConfig(str(tmp_path), mlm_probability=1.5, report_to=[])


def test_task_distillation_loss_weights_and_unlabelled_rows():
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 2, -100, 1])
    ce = torch.nn.functional.cross_entropy(student[[0, 1, 3]], labels[[0, 1, 3]])
    kd = kd_loss(student, teacher, 2.0)
    got = task_distillation_loss(student, teacher, labels, alpha_ce=0.3, alpha_kd=0.7)
    assert got.item() == pytest.approx((0.3 * ce + 0.7 * kd).item(), rel=1e-5)
    unlabelled = torch.full((4,), -100)
    assert task_distillation_loss(student, teacher, unlabelled).item() == pytest.approx(0.5 * kd.item(), rel=1e-5)
    assert task_distillation_loss(student, teacher, None).item() == pytest.approx(0.5 * kd.item(), rel=1e-5)
    # a single logit (a reranker) is a Bernoulli: BCE-with-logits on 0 / 1 plus the binary KL, not a 1-way softmax
    single_s, single_t, binary = torch.randn(4, 1), torch.randn(4, 1), torch.tensor([1, 0, -100, 1])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(single_s[[0, 1, 3], 0], binary[[0, 1, 3]].float())
    got = task_distillation_loss(single_s, single_t, binary, alpha_ce=0.3, alpha_kd=0.7)
    assert got.item() > 0.3 * bce.item()  # the KL adds to it (a 1-way softmax KL would be 0)


def test_distillation_trainer_task_objective_fits_the_teacher(tmp_path, bert_tok, texts, calibration):
    """A classifier student extracted from a classifier teacher: 'auto' picks the logits loss, training lowers it."""
    torch.manual_seed(0)
    teacher = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=3)).eval())
    student = extract_subnetwork(teacher, Candidate(1, 2, 24, 16, 8), compute_importance(teacher, calibration))
    assert type(student).__name__ == "BortForSequenceClassification"
    with torch.no_grad():  # a confident teacher and a student head that disagrees with it
        teacher.classifier.weight.mul_(30.0)
        student.classifier.weight.normal_(0.0, 1.0)
    from datasets import Dataset

    rows = Dataset.from_dict({"text": texts * 4, "labels": [i % 3 for i in range(len(texts) * 4)]})
    data = rows.map(lambda r: bert_tok(r["text"], truncation=True, max_length=16), remove_columns=["text"])
    args = DistillationConfig(
        str(tmp_path / "out"),
        max_steps=15,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        alpha_ce=0.0,
        alpha_kd=1.0,
        per_device_train_batch_size=8,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    trainer = DistillationTrainer(
        model=student, teacher=teacher, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(bert_tok)
    )
    assert trainer.objective == "logits" and trainer.projection is None
    batch = DataCollatorWithPadding(bert_tok)([data[i] for i in range(len(data))])

    def kd_now():
        student.eval()
        with torch.no_grad():
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            return kd_loss(student(**inputs).logits, teacher(**inputs).logits).item()

    before = kd_now()
    trainer.train()
    assert kd_now() < 0.5 * before


def test_distillation_objective_is_checked_against_the_heads(tmp_path, bert_tok, texts):
    teacher = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=3)).eval())
    other = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=2)).eval())
    data = _dataset(bert_tok, texts)
    for objective, student, match in (("logits", other, "same number of labels"), ("mlm", other, "MLM heads")):
        args = DistillationConfig(
            str(tmp_path / objective), distillation_objective=objective, report_to=[], use_cpu=True
        )
        with pytest.raises(ValueError, match=match):
            DistillationTrainer(model=student, teacher=teacher, args=args, train_dataset=data)
    hidden = DistillationConfig(str(tmp_path / "h"), distillation_objective="hidden", report_to=[], use_cpu=True)
    trainer = DistillationTrainer(model=other, teacher=teacher, args=hidden, train_dataset=data)
    assert trainer.objective == "hidden"
    with pytest.raises(ValueError, match="`distillation_objective`"):
        DistillationConfig(str(tmp_path), distillation_objective="kl", report_to=[])


def _hidden_trainer(tmp_path, bert_tok, texts, calibration, **overrides):
    """An extracted student (24 wide) of a 32-wide teacher, with the hidden-state objective and its projection."""
    torch.manual_seed(0)
    teacher = convert_to_bort(BertForMaskedLM(BertConfig(**TINY_SHAPE)).eval()).bort
    student = extract_subnetwork(teacher, Candidate(1, 2, 24, 16, 8), compute_importance(teacher, calibration))
    values = dict(max_steps=2, per_device_train_batch_size=4, report_to=[], use_cpu=True, save_strategy="no")
    args = DistillationConfig(str(tmp_path / "out"), **{**values, **overrides})
    return DistillationTrainer(
        model=student,
        teacher=teacher,
        args=args,
        train_dataset=_dataset(bert_tok, texts),
        data_collator=DataCollatorWithPadding(bert_tok),
    )


def test_distillation_args_none_and_plain_training_arguments(tmp_path, bert_tok, texts, monkeypatch):
    from transformers import TrainingArguments

    monkeypatch.chdir(tmp_path)  # the default output folder is relative: not in the checkout

    torch.manual_seed(0)
    teacher = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=3)).eval())
    data = _dataset(bert_tok, texts)
    default = DistillationTrainer(teacher, teacher=teacher, train_dataset=data)
    assert type(default.args) is DistillationConfig and default.args.output_dir.endswith("-distilled")
    assert default.args.learning_rate == 1e-4 and default.args.distillation_objective == "auto"
    plain = TrainingArguments(str(tmp_path), learning_rate=3e-3, max_steps=5, seed=3, report_to=[], use_cpu=True)
    trainer = DistillationTrainer(teacher, plain, None, data, teacher=teacher)  # Trainer's positional order
    assert isinstance(trainer.args, DistillationConfig)
    for name in ("output_dir", "learning_rate", "max_steps", "seed", "lr_scheduler_type"):
        assert getattr(trainer.args, name) == getattr(plain, name)
    assert trainer.args.temperature == 2.0 and trainer.args.get_warmup_steps(100) == plain.get_warmup_steps(100)
    with pytest.raises(TypeError, match="DistillationConfig, a transformers TrainingArguments or None"):
        DistillationTrainer(teacher, "out", teacher=teacher, train_dataset=data)


def test_the_teacher_is_prepared_by_accelerate_in_evaluation_mode(tmp_path, bert_tok, texts, calibration, monkeypatch):
    from accelerate import Accelerator

    prepared = []
    real = Accelerator.prepare_model

    def spy(self, model, *args, **kwargs):
        prepared.append((model, kwargs.get("evaluation_mode")))
        return real(self, model, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "prepare_model", spy)
    trainer = _hidden_trainer(tmp_path, bert_tok, texts, calibration)
    assert prepared == [(trainer.teacher, True)]
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())


def test_the_projection_is_a_submodule_of_the_student_while_it_trains(tmp_path, bert_tok, texts, calibration):
    from safetensors.torch import load_file

    trainer = _hidden_trainer(
        tmp_path, bert_tok, texts, calibration, save_strategy="steps", save_steps=2, weight_decay=0.5
    )
    student, projection = trainer.model, trainer.projection
    assert projection is not None and not hasattr(student, "distillation_projection")
    seen = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
            seen["submodule"] = student.distillation_projection is projection
            groups = [g for g in optimizer.param_groups if any(p is projection.weight for p in g["params"])]
            seen["decay"] = [g["weight_decay"] for g in groups]

    trainer.add_callback(Probe())
    before = projection.weight.detach().clone()
    trainer.train()
    assert seen == {"submodule": True, "decay": [0.0]}  # trained by Trainer's optimizer, without weight decay
    assert not hasattr(student, "distillation_projection")  # the student is handed back as it was
    assert not torch.equal(projection.weight, before)
    saved = load_file(str(tmp_path / "out" / "checkpoint-2" / "model.safetensors"))
    torch.testing.assert_close(saved["distillation_projection.weight"], projection.weight.detach())  # resumable
    assert "distillation_projection.weight" not in student.state_dict()
