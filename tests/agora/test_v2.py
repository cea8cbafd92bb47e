"""Agora v2: dev splits, selection near errors (budget over rounds, class cap, diversity, uncertainty), soft labels,
self-training, retraining, the round schedule, v1 still reachable, and the CLI flags."""

from __future__ import annotations

import math
import random

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainerCallback

from hf_bort.agora import AgoraConfig, AgoraTrainer
from hf_bort.agora.collator import pad_points
from hf_bort.agora.losses import soft_label_loss
from hf_bort.agora.selection import k_center_greedy, round_budget, select_near_errors, stratified_split
from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import WORDS, bert_tokenizer

POSITIVE = {"good", "great", "fun"}


def sentiment(text: str) -> int:
    return int(any(word in POSITIVE for word in text.split()))


def soft_labeller(points):
    """Probability rows: 0.9 on the keyword class."""
    rows = []
    for p in points:
        label = sentiment(p["text"])
        rows.append([0.1, 0.9] if label else [0.9, 0.1])
    return torch.tensor(rows)


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bert_tokenizer(tmp_path_factory.mktemp("tok"))


def _dataset(tokenizer, n, seed):
    texts = _texts(n, seed)
    data = {"text": texts, "label": [sentiment(t) for t in texts]}
    return Dataset.from_dict(data).map(lambda b: tokenizer(b["text"], truncation=True, max_length=16), batched=True)


def _model(seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=2))


def _trainer(tokenizer, path, callbacks=None, pool=60, **overrides):
    values = dict(
        agora_rounds=3,
        agora_budget=12,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=16,
        num_train_epochs=1,
        learning_rate=5e-3,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    values.update(overrides)
    return AgoraTrainer(
        model=_model(),
        args=AgoraConfig(str(path), **values),
        train_dataset=_dataset(tokenizer, 16, 1),
        eval_dataset=_dataset(tokenizer, 24, 2),
        labeller=soft_labeller,
        processing_class=tokenizer,
        unlabelled_pool=_texts(pool, 3) if pool else None,
        callbacks=callbacks,
    )


# Splits -----------------------------------------------------------------------------------------------------------
def test_stratified_split_is_disjoint_stratified_and_seeded():
    labels = [0] * 30 + [1] * 10
    selection, stopping = stratified_split(labels, 0.5, seed=0)
    assert set(selection).isdisjoint(stopping) and sorted(selection + stopping) == list(range(40))
    assert sum(labels[i] for i in selection) == 5 and len(selection) == 20  # per class: 15 + 5
    assert stratified_split(labels, 0.5, seed=0) == (selection, stopping)
    assert stratified_split(labels, 0.5, seed=1) != (selection, stopping)


def test_v2_trains_on_the_selection_part_and_evaluates_on_the_stopping_part(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, agora_rounds=1, agora_self_training=False)
    dev = _dataset(tokenizer, 24, 2)
    assert set(trainer.selection_rows).isdisjoint(trainer.stopping_rows)
    assert len(trainer.selection_rows) + len(trainer.stopping_rows) == 24
    assert list(trainer.eval_dataset["text"]) == [dev[i]["text"] for i in trainer.stopping_rows]
    trainer.train()
    stats = trainer.agora_history[0]
    assert stats.stopping_accuracy is not None
    gold = [row for row in trainer.agora_state.augmented if "agora_soft" not in row]  # joined after round 0
    assert len(gold) == len(trainer.selection_rows)
    assert sorted(int(r["labels"]) for r in gold) == sorted(dev[i]["label"] for i in trainer.selection_rows)


# Selection --------------------------------------------------------------------------------------------------------
def test_round_budget_spreads_the_budget_over_the_rounds():
    assert round_budget(400, 0, 3, default=0) == 134
    assert round_budget(400, 134, 2, default=0) == 133
    assert round_budget(400, 267, 1, default=0) == 133
    assert round_budget(None, 0, 3, default=7) == 7


def test_the_trainer_spends_the_budget_in_every_round(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, agora_self_training=False, agora_class_cap=None)
    trainer.train()
    history = trainer.agora_history
    assert [h.round_budget for h in history] == [4, 4, 4]
    assert [h.samples_drawn for h in history] == [4, 4, 4]  # not all in round 1
    assert trainer.agora_state.labeller_calls == 12
    # With the class cap a round may leave calls unspent; the next rounds share them.
    capped = _trainer(tokenizer, tmp_path / "capped", agora_self_training=False)
    capped.train()
    calls = 0
    for left, stats in zip((3, 2, 1), capped.agora_history, strict=True):
        assert stats.round_budget == math.ceil((12 - calls) / left) and 0 < stats.samples_drawn <= stats.round_budget
        calls += stats.samples_drawn


def test_selection_prefers_uncertain_candidates():
    probs = torch.tensor([[0.95, 0.05], [0.55, 0.45], [0.2, 0.8], [0.5, 0.5], [0.99, 0.01]])
    embeddings = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    chosen = select_near_errors(embeddings, probs, 2, diversity="none", class_cap=None)
    assert chosen.indices == [3, 1]
    entropy = select_near_errors(embeddings, probs, 3, uncertainty_kind="entropy", diversity="none", class_cap=None)
    assert entropy.indices == [3, 1, 2]
    assert select_near_errors(embeddings, probs, 2, diversity="none", class_cap=None, exclude=[3]).indices == [1, 2]


def test_selection_keeps_to_the_neighbours_of_the_errors():
    # Two groups in embedding space; the error sits in the first; the most uncertain point is in the second.
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.95, 0.05], [0.0, 1.0], [0.1, 0.9]])
    probs = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.5, 0.5], [0.52, 0.48]])
    errors = torch.tensor([[1.0, 0.02]])
    chosen = select_near_errors(embeddings, probs, 2, error_embeddings=errors, neighbours=3, diversity="none")
    assert chosen.candidates == 3 and set(chosen.indices) == {1, 0}
    everywhere = select_near_errors(embeddings, probs, 2, diversity="none", class_cap=None)
    assert everywhere.indices == [3, 4]


def test_selection_respects_the_class_cap():
    # The four most uncertain candidates are all predicted class 0.
    probs = torch.tensor([[0.5, 0.5], [0.52, 0.48], [0.54, 0.46], [0.56, 0.44], [0.3, 0.7], [0.2, 0.8]])
    embeddings = torch.eye(6)
    capped = select_near_errors(embeddings, probs, 4, diversity="none", class_cap=0.5)
    predicted = probs.argmax(-1)
    assert sum(int(predicted[i] == 0) for i in capped.indices) == 2 and len(capped.indices) == 4
    uncapped = select_near_errors(embeddings, probs, 4, diversity="none", class_cap=None)
    assert uncapped.indices == [0, 1, 2, 3]


def test_selection_spreads_its_picks_with_k_center():
    # Two tight clusters; the most uncertain points all sit in cluster A.
    a = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01]])
    b = torch.tensor([[5.0, 5.0], [5.01, 5.0]])
    embeddings = torch.cat([a, b])
    probs = torch.tensor([[0.5, 0.5], [0.51, 0.49], [0.49, 0.51], [0.6, 0.4], [0.4, 0.6]])
    plain = select_near_errors(embeddings, probs, 2, diversity="none", class_cap=None)
    assert set(plain.indices) <= {0, 1, 2}
    diverse = select_near_errors(embeddings, probs, 2, diversity="kcenter", class_cap=None, shortlist=3.0)
    assert diverse.indices[0] == 0 and diverse.indices[1] in (3, 4)
    assert k_center_greedy(embeddings, 2) == [0, 4]


# Soft labels ------------------------------------------------------------------------------------------------------
def test_soft_label_loss_is_the_kl_formula_on_a_hand_example():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0])
    teacher = torch.tensor([[0.8, 0.2], [0.0, 0.0]])
    mask = torch.tensor([True, False])
    weights = torch.tensor([0.5, 2.0])
    losses = soft_label_loss(logits, labels, weights=weights, soft_targets=teacher, soft_mask=mask, temperature=2.0)
    # Row 0: teacher at T=2 is (√0.8, √0.2) normalised = (2/3, 1/3); student at T=2 is softmax(0.5, 0).
    q = [2 / 3, 1 / 3]
    z = math.exp(0.5) + 1.0
    s = [math.exp(0.5) / z, 1.0 / z]
    kl = sum(qi * math.log(qi / si) for qi, si in zip(q, s, strict=True))
    assert losses[0].item() == pytest.approx(0.5 * 4 * kl, rel=1e-5)
    # Row 1: plain cross-entropy against label 0, times 2.
    assert losses[1].item() == pytest.approx(2.0 * -math.log(1.0 / (1.0 + math.exp(2.0))), rel=1e-5)


def test_v2_trains_on_teacher_probabilities_weighted_by_confidence(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, agora_rounds=1, agora_self_training=False)
    trainer.train()
    taught = [row for row in trainer.agora_state.augmented if "agora_soft" in row]
    assert taught
    for row in taught:
        assert torch.allclose(
            row["agora_soft"], torch.tensor([0.9, 0.1]) if row["labels"] == 0 else torch.tensor([0.1, 0.9])
        )
        assert row["agora_weight"] == pytest.approx(0.9)
    # The loss of a batch of those rows is the weighted soft-label loss, not the model's hard-label loss.
    batch = pad_points([{k: v for k, v in row.items() if k != "pool_index"} for row in taught[:3]])
    model = trainer.model
    loss = trainer.compute_loss(model, dict(batch))
    model.eval()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = soft_label_loss(
        logits,
        batch["labels"],
        weights=batch["agora_weight"],
        soft_targets=batch["agora_soft"],
        soft_mask=batch["agora_soft_mask"],
        temperature=2.0,
    ).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    hard = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert not torch.allclose(loss, hard, atol=1e-4)


def test_the_confidence_threshold_drops_unsure_teacher_rows(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, agora_rounds=1, agora_self_training=False, agora_confidence_threshold=0.95)
    trainer.train()
    assert trainer.agora_history[0].samples_drawn > 0
    assert trainer.agora_history[0].accepted == 0


# Self-training, retraining, schedule ------------------------------------------------------------------------------
def test_self_training_adds_confident_pool_rows_without_teacher_calls(tokenizer, tmp_path):
    trainer = _trainer(
        tokenizer, tmp_path, agora_rounds=1, agora_self_training_threshold=0.0, agora_self_training_max=10
    )
    trainer.train()
    rows = trainer.agora_state.self_trained
    assert len(rows) == trainer.agora_history[0].self_trained > 0
    assert all(r["agora_weight"] == pytest.approx(0.3) and "agora_soft" not in r for r in rows)
    assert not {r["pool_index"] for r in rows} & trainer.agora_state.used_pool  # never sent to the teacher
    assert trainer.agora_state.labeller_calls == trainer.agora_history[0].samples_drawn
    off = _trainer(tokenizer, tmp_path / "off", agora_rounds=1, agora_self_training=False)
    off.train()
    assert off.agora_state.self_trained == [] and off.agora_history[0].self_trained == 0


class _Weights(TrainerCallback):
    def __init__(self):
        self.at_epoch_begin = []

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        self.at_epoch_begin.append([p.detach().clone() for p in model.parameters()])


def test_retraining_restarts_every_round_from_the_initial_weights(tokenizer, tmp_path):
    for retrain in (True, False):
        trainer = _trainer(tokenizer, tmp_path / str(retrain), agora_rounds=2, agora_retrain=retrain)
        probe = _Weights()
        trainer.add_callback(probe)  # after AgoraCallback: sees the weights the round starts from
        trainer.train()
        first, *later = probe.at_epoch_begin
        same = [all(torch.equal(a, b) for a, b in zip(first, w, strict=True)) for w in later]
        assert same == ([True, True] if retrain else [False, False])


def test_the_learning_rate_schedule_restarts_every_round(tokenizer, tmp_path):
    for per_round in (True, False):
        trainer = _trainer(tokenizer, tmp_path, agora_round_schedule=per_round, warmup_steps=2)  # 5.x: no warmup_ratio
        steps = trainer._steps_per_round()
        trainer.create_optimizer_and_scheduler(num_training_steps=4 * steps)
        factor = trainer.lr_scheduler.lr_lambdas[0]
        assert (factor(1) == factor(1 + steps)) is per_round


# v1 and the CLI ---------------------------------------------------------------------------------------------------
def test_v1_is_still_reachable(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, agora_version="v1", agora_rounds=1, agora_budget=None)
    assert len(trainer.eval_dataset) == 24 and trainer.stopping_rows == []
    trainer.train()
    stats = trainer.agora_history[0]
    assert stats.stopping_accuracy is None and stats.round_budget is None
    assert trainer.agora_state.augmented and all("agora_soft" not in r for r in trainer.agora_state.augmented)
    assert AgoraConfig("x").agora_version == "v2"


def test_cli_flags_reach_the_config():
    from hf_bort.agora.cli import parse

    base = ["--model-name-or-path", "s", "--labeller-name-or-path", "t", "--train-file", "a", "--dev-file", "b"]
    _, config = parse([*base, "--output-dir", "o"])
    assert config.agora_version == "v2" and config.agora_self_training and not config.agora_retrain
    _, config = parse(
        [
            *base,
            "--output-dir", "o",
            "--agora-version", "v1",
            "--agora-self-training", "false",
            "--agora-uncertainty", "entropy",
            "--agora-diversity", "none",
            "--agora-class-cap", "0.5",
            "--agora-selection-share", "0.3",
            "--agora-retrain", "true",
            "--agora-temperature", "3",
        ]
    )  # fmt: skip
    assert (config.agora_version, config.agora_self_training, config.agora_uncertainty) == ("v1", False, "entropy")
    assert (config.agora_diversity, config.agora_class_cap, config.agora_selection_share) == ("none", 0.5, 0.3)
    assert (config.agora_retrain, config.agora_temperature) == (True, 3.0)
    with pytest.raises(SystemExit):
        parse([*base, "--output-dir", "o", "--agora-uncertainty", "loudest"])
    with pytest.raises(ValueError, match="agora_selection_share"):
        AgoraConfig("o", agora_selection_share=1.0)
