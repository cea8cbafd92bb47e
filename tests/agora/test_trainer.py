"""AgoraTrainer integration on tiny random BERT classifiers: rounds, growth, logs, resume, LoRA, bad inputs."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification

from hf_bort.agora import AgoraConfig, AgoraTrainer
from hf_bort.agora.collator import pad_points
from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import WORDS, bert_tokenizer

POSITIVE = {"good", "great", "fun"}


def sentiment(text: str) -> int:
    return int(any(word in POSITIVE for word in text.split()))


def keyword_labeller(points):
    return [sentiment(p["text"]) for p in points]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bert_tokenizer(tmp_path_factory.mktemp("tok"))


def _dataset(tokenizer, n, seed, labels=True):
    texts = _texts(n, seed)
    data = {"text": texts}
    if labels:
        data["label"] = [sentiment(t) for t in texts]
    return Dataset.from_dict(data).map(lambda b: tokenizer(b["text"], truncation=True, max_length=16), batched=True)


def _model(seed=0, num_labels=2):
    torch.manual_seed(seed)
    config = BertConfig(**TINY_SHAPE, num_labels=num_labels)
    return BertForSequenceClassification(config)


def _args(path, **overrides):
    values = dict(
        agora_rounds=2,
        agora_samples_per_error=2,
        agora_max_errors=6,
        agora_version="v1",
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
    return AgoraConfig(str(path), **values)


def _trainer(tokenizer, path, model=None, labeller=keyword_labeller, **overrides):
    return AgoraTrainer(
        model=model if model is not None else _model(),
        args=_args(path, **overrides),
        train_dataset=_dataset(tokenizer, 16, 1),
        eval_dataset=_dataset(tokenizer, 24, 2),
        labeller=labeller,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize("sampler", ["embedding", "text"])
def test_rounds_grow_the_training_set_and_log(tokenizer, tmp_path, sampler):
    trainer = _trainer(tokenizer, tmp_path, agora_sampler=sampler, gradient_accumulation_steps=2)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    history = trainer.agora_history
    assert [h.round for h in history] == [1, 2]
    assert all(h.samples_drawn == 2 * min(6, h.dev_errors + h.replayed_errors) for h in history)
    assert len(trainer.train_dataset) == 16 + sum(h.accepted for h in history) > 16
    assert history[-1].train_size == len(trainer.train_dataset)
    logged = [entry for entry in trainer.state.log_history if "agora/round" in entry]
    assert [entry["agora/round"] for entry in logged] == [1, 2]
    assert logged[0]["agora/accepted"] == history[0].accepted
    # 2 accumulation steps of 4 over 16 rows -> 2 optimizer steps per round, 3 rounds.
    assert trainer.state.global_step == 6
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    kinds = {"inputs_embeds" in item for item in trainer.agora_state.augmented}
    assert kinds == ({True} if sampler == "embedding" else {False})
    if sampler == "text":
        assert all(0 <= int(i) < 99 for item in trainer.agora_state.augmented for i in item["input_ids"])


def _pool_trainer(tokenizer, path, **kwargs):
    """A 2-round pool-sampler trainer over a 40-text pool; `kwargs` go to `AgoraTrainer`."""
    return AgoraTrainer(
        model=_model(),
        args=_args(path, agora_sampler="pool", agora_rounds=2),
        train_dataset=_dataset(tokenizer, 16, 1),
        eval_dataset=_dataset(tokenizer, 24, 2),
        labeller=keyword_labeller,
        processing_class=tokenizer,
        unlabelled_pool=_texts(40, 3),
        **kwargs,
    )


def test_pool_sampler_draws_each_pool_point_once(tokenizer, tmp_path):
    trainer = _pool_trainer(tokenizer, tmp_path)
    trainer.train()
    drawn = sum(h.samples_drawn for h in trainer.agora_history)
    assert drawn > 0
    assert len(trainer.agora_state.used_pool) == drawn
    assert trainer.agora_state.used_pool <= set(range(40))


def test_pool_with_a_fixed_encoder_is_indexed_once_before_the_first_step(tokenizer, tmp_path):
    from transformers import TrainerCallback

    encoder = _model(seed=7).bert
    calls = []
    seen_at_first_step = []

    class CacheProbe(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                seen_at_first_step.append(trainer.sampler._cache is not None)

    trainer = _pool_trainer(
        tokenizer,
        tmp_path,
        pool_encoder=encoder,
        pool_encoder_tokenizer=tokenizer,
        callbacks=[CacheProbe()],
    )
    embed = trainer.sampler._embed
    trainer.sampler._embed = lambda model, tok, texts=None, ids_rows=None: (
        calls.append(len(texts or ids_rows)) or embed(model, tok, texts=texts, ids_rows=ids_rows)
    )
    trainer.train()
    assert seen_at_first_step == [True]
    assert trainer.agora_pool_index_seconds > 0
    assert calls.count(40) == 1  # the 40-text pool once; the rounds only embed their dev errors
    assert sum(h.samples_drawn for h in trainer.agora_history) > 0


def test_mixed_batch_merges_embeddings(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path)
    rows = [{"input_ids": [2, 5, 3], "labels": 0}, {"input_ids": [2, 6, 7, 3], "inputs_embeds": torch.ones(4, 32)}]
    rows[1]["labels"] = 1
    batch = pad_points(rows)
    assert batch["agora_embeds_mask"].tolist() == [False, True]
    model = trainer.model
    loss = trainer.compute_loss(model, batch)
    embeds = model.get_input_embeddings()(batch["input_ids"])
    embeds[1] = 1.0
    expected = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert torch.allclose(loss, expected)


def test_confidence_threshold_and_budget(tokenizer, tmp_path):
    def unsure(points):
        return [(sentiment(p["text"]), 0.4 if i % 2 else 0.9) for i, p in enumerate(points)]

    trainer = _trainer(
        tokenizer, tmp_path, labeller=unsure, agora_confidence_threshold=0.5, agora_budget=5, agora_max_errors=None
    )
    trainer.train()
    history = trainer.agora_history
    assert sum(h.samples_drawn for h in history) == trainer.agora_state.labeller_calls <= 5
    assert history[0].accepted == (history[0].samples_drawn + 1) // 2


def test_resume_continues_same_round_with_same_augmented_set(tokenizer, tmp_path):
    full = _trainer(tokenizer, tmp_path / "full", agora_rounds=3)
    full.train()

    first = _trainer(tokenizer, tmp_path / "cut", agora_rounds=3, save_strategy="steps", save_steps=5)
    first.train()  # saves at step 5 (round 1 of 0..3, 4 steps per round): after round 1's augmentation
    checkpoint = tmp_path / "cut" / "checkpoint-5"
    assert (checkpoint / "agora_state.pt").is_file()
    saved = torch.load(checkpoint / "agora_state.pt", weights_only=True)
    assert saved["round"] == 1

    resumed = _trainer(tokenizer, tmp_path / "cut", agora_rounds=3)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert [h.round for h in resumed.agora_history] == [1, 2, 3]
    untimed = [replace(h, seconds=0.0, labeller_seconds=0.0) for h in resumed.agora_history]
    assert untimed == [replace(h, seconds=0.0, labeller_seconds=0.0) for h in full.agora_history]
    assert [h.accepted for h in resumed.agora_history] == [h.accepted for h in full.agora_history]
    for a, b in zip(resumed.agora_state.augmented, full.agora_state.augmented, strict=True):
        assert torch.equal(a["input_ids"], b["input_ids"]) and a["labels"] == b["labels"]
        assert torch.allclose(a["inputs_embeds"], b["inputs_embeds"], atol=1e-5)
    for a, b in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_resume_from_a_missing_checkpoint_raises_before_training(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path / "run", agora_rounds=1)
    with pytest.raises(FileNotFoundError, match="resume_from_checkpoint .*nonexistent' does not exist"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "nonexistent"))
    assert trainer.state.global_step == 0 and not list((tmp_path / "run").glob("checkpoint-*"))


class _Killed(Exception):
    pass


def test_the_agora_state_is_in_the_checkpoint_before_trainer_completes_it(tokenizer, tmp_path, monkeypatch):
    real = AgoraTrainer.save_model

    def killed_after_the_model(self, output_dir=None, _internal_call=False):
        real(self, output_dir, _internal_call=_internal_call)
        raise _Killed  # a kill right after the weights: optimizer, scheduler and trainer_state.json never written

    monkeypatch.setattr(AgoraTrainer, "save_model", killed_after_the_model)
    trainer = _trainer(tokenizer, tmp_path / "run", agora_rounds=3, save_strategy="steps", save_steps=5)
    with pytest.raises(_Killed):
        trainer.train()
    checkpoint = tmp_path / "run" / "checkpoint-5"
    assert torch.load(checkpoint / "agora_state.pt", weights_only=True)["round"] == 1
    assert not (checkpoint / "trainer_state.json").exists()
    with pytest.raises(ValueError, match="checkpoint-5' is not a complete AgoraTrainer checkpoint"):
        _trainer(tokenizer, tmp_path / "run", agora_rounds=3).train(resume_from_checkpoint=str(checkpoint))


def test_resume_true_skips_newer_checkpoints_cut_short_while_saving(tokenizer, tmp_path, caplog):
    full = _trainer(tokenizer, tmp_path / "full", agora_rounds=3)
    full.train()
    first = _trainer(tokenizer, tmp_path / "cut", agora_rounds=3, save_strategy="steps", save_steps=5)
    first.train()  # checkpoints 5, 10, 15 and the last step's 16
    (tmp_path / "cut" / "checkpoint-16" / "agora_state.pt").unlink()  # as the old on_save left 4 of 9 kills
    (tmp_path / "cut" / "checkpoint-15" / "trainer_state.json").unlink()  # killed before Trainer finished it
    (tmp_path / "cut" / "checkpoint-20").mkdir()  # and one killed before it held anything
    resumed = _trainer(tokenizer, tmp_path / "cut", agora_rounds=3)
    with caplog.at_level("WARNING", logger="hf_bort.agora.checkpoints"):
        resumed.train(resume_from_checkpoint=True)
    assert "Resuming from " + str(tmp_path / "cut" / "checkpoint-10") in caplog.text
    assert all(f"checkpoint-{step}" in caplog.text for step in (15, 16, 20))
    untimed = [replace(h, seconds=0.0, labeller_seconds=0.0) for h in resumed.agora_history]
    assert untimed == [replace(h, seconds=0.0, labeller_seconds=0.0) for h in full.agora_history]
    for a, b in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_resume_true_without_a_complete_checkpoint_raises(tokenizer, tmp_path):
    (tmp_path / "run" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no complete checkpoint .*checkpoint-3"):
        _trainer(tokenizer, tmp_path / "run", agora_rounds=1).train(resume_from_checkpoint=True)


def test_lora_model(tokenizer, tmp_path):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    model = peft.get_peft_model(_model(), config)
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "word_embeddings" in n}
    trainer = _trainer(tokenizer, tmp_path, model=model, agora_sampler="embedding")
    trainer.train()
    assert len(trainer.agora_history) == 2 and trainer.agora_state.augmented
    params = dict(model.named_parameters())
    assert any(not torch.equal(v, params[n]) for n, v in lora.items())
    assert all(torch.equal(v, params[n]) for n, v in frozen.items())


# Bad inputs fail before training --------------------------------------------------------------------------------
def test_zero_rounds_and_unknown_sampler(tmp_path):
    with pytest.raises(ValueError, match="agora_rounds"):
        AgoraConfig(str(tmp_path), agora_rounds=0)
    with pytest.raises(ValueError, match="agora_sampler"):
        AgoraConfig(str(tmp_path), agora_sampler="gaussian")
    with pytest.raises(ValueError, match="agora_confidence_threshold"):
        AgoraConfig(str(tmp_path), agora_confidence_threshold=1.5)


def test_dev_set_without_labels(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="eval_dataset.*label"):
        AgoraTrainer(
            model=_model(),
            args=_args(tmp_path),
            train_dataset=_dataset(tokenizer, 8, 1),
            eval_dataset=_dataset(tokenizer, 8, 2, labels=False),
            labeller=keyword_labeller,
            processing_class=tokenizer,
        )


def test_labeller_returning_unknown_labels_fails_before_training(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, labeller=lambda points: [7] * len(points))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match="unknown label 7"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_label_space_mismatch(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="num_labels=3"):
        _trainer(tokenizer, tmp_path, labeller=_model(num_labels=3))
    # A model labeller with the same label space is accepted and labels the samples.
    trainer = _trainer(tokenizer, tmp_path, labeller=(_model(seed=1), tokenizer), agora_rounds=1)
    trainer.train()
    assert trainer.agora_history[0].samples_drawn > 0


def test_pool_sampler_needs_a_pool(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="unlabelled_pool"):
        _trainer(tokenizer, tmp_path, agora_sampler="pool")


def test_callable_probability_rows(tokenizer, tmp_path):
    def probs(points):
        return torch.tensor([[0.2, 0.8]] * len(points))

    trainer = _trainer(tokenizer, tmp_path, labeller=probs, agora_rounds=1)
    result = trainer.labeller([{"text": "a"}, {"text": "b"}])
    assert (result.labels, result.confidences) == ([1, 1], pytest.approx([0.8, 0.8]))
    assert [pytest.approx(row) for row in result.probabilities] == [[0.2, 0.8], [0.2, 0.8]]


# Signature (trl's convention) ------------------------------------------------------------------------------------
def test_args_none_gives_the_default_config_and_a_plain_training_arguments_is_converted(
    tokenizer, tmp_path, monkeypatch
):
    from transformers import TrainingArguments

    monkeypatch.chdir(tmp_path)  # the default output folder is relative: not in the checkout

    train, dev = _dataset(tokenizer, 16, 1), _dataset(tokenizer, 24, 2)
    default = AgoraTrainer(_model(), train_dataset=train, eval_dataset=dev, labeller=keyword_labeller)
    assert type(default.args) is AgoraConfig
    assert default.args.output_dir.endswith("BertForSequenceClassification-agora")
    assert default.args.agora_rounds == AgoraConfig("x").agora_rounds
    plain = TrainingArguments(
        str(tmp_path), learning_rate=3e-3, num_train_epochs=2, per_device_train_batch_size=4, seed=7, use_cpu=True
    )
    # Trainer's positional order: model, args, data_collator, train_dataset, eval_dataset.
    trainer = AgoraTrainer(_model(), plain, None, train, dev, labeller=keyword_labeller, processing_class=tokenizer)
    assert isinstance(trainer.args, AgoraConfig)
    for name in ("output_dir", "learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed"):
        assert getattr(trainer.args, name) == getattr(plain, name)
    # No pool: the default sampler is 'embedding'; v2 (the default) evaluates on dev's stopping part only.
    assert trainer.args.agora_sampler == "embedding"
    assert list(trainer.eval_dataset["text"]) == [dev[i]["text"] for i in trainer.stopping_rows]
    with pytest.raises(TypeError, match="AgoraConfig, a transformers TrainingArguments or None"):
        AgoraTrainer(_model(), {"output_dir": str(tmp_path)}, train_dataset=train, eval_dataset=dev, labeller=len)


def test_the_run_spans_every_round_and_leaves_the_callers_arguments_alone(tokenizer, tmp_path):
    trainer = _trainer(tokenizer, tmp_path, max_steps=2, agora_rounds=2)
    trainer.train()
    assert trainer.state.max_steps == 6 and trainer.state.num_train_epochs == 3 and trainer.state.global_step == 6
    assert trainer.args.max_steps == 2 and trainer.agora_callback.steps_per_round == 2  # one round, as given
    assert [h.round for h in trainer.agora_history] == [1, 2]
