"""Agora on the blog's torus toy: a training set from one third of the ring, dev and test from all of it."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Trainer, TrainingArguments

from hf_bort.agora import AgoraConfig, AgoraTrainer
from tiny_torus import ToyConfig, ToyMLP, accuracy, torus_dataset, torus_labeller, torus_points

COMMON = dict(
    per_device_train_batch_size=16,
    learning_rate=2e-2,
    num_train_epochs=8,
    lr_scheduler_type="constant",
    save_strategy="no",
    report_to="none",
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)


def _data():
    generator = torch.Generator().manual_seed(0)
    train = torus_dataset(torus_points(96, generator, max_angle=2 * math.pi / 3))
    dev = torus_dataset(torus_points(120, generator))
    test = torus_points(2000, generator)
    return train, dev, test


def test_agora_beats_plain_training_on_the_torus(tmp_path):
    train, dev, test = _data()
    torch.manual_seed(0)
    plain = ToyMLP(ToyConfig())
    # Plain training, same number of optimizer steps as the whole Agora run (4 rounds).
    Trainer(
        model=plain,
        args=TrainingArguments(str(tmp_path / "plain"), **{**COMMON, "num_train_epochs": 32}),
        train_dataset=train,
    ).train()
    plain_accuracy = accuracy(plain, test)

    torch.manual_seed(0)
    model = ToyMLP(ToyConfig())
    before = [p.detach().clone() for p in model.parameters()]
    args = AgoraConfig(
        str(tmp_path / "agora"),
        agora_version="v1",
        agora_rounds=3,
        agora_samples_per_error=8,
        agora_radius=0.15,
        **COMMON,
    )
    trainer = AgoraTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev, labeller=torus_labeller)
    trainer.train()
    agora_accuracy = accuracy(model, test)

    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    history = trainer.agora_history
    assert [h.round for h in history] == [1, 2, 3]
    assert history[0].dev_errors > history[-1].dev_errors
    assert history[0].samples_drawn == 8 * history[0].dev_errors
    assert history[-1].train_size == len(train) + sum(h.accepted for h in history)
    assert 0.5 < history[0].labeller_agreement <= 1.0
    print(f"plain {plain_accuracy:.3f} agora {agora_accuracy:.3f}")
    assert agora_accuracy >= plain_accuracy + 0.2
    assert agora_accuracy >= 0.85


def test_hyperparameter_search_defaults_to_the_grid_with_a_pruner(tmp_path, monkeypatch):
    optuna = pytest.importorskip("optuna")
    from hf_bort.agora import AGORA_GRID

    train, dev, _ = _data()
    studies = []
    real_create_study = optuna.create_study

    def recording_create_study(*args, **kwargs):
        studies.append(real_create_study(*args, **kwargs))
        return studies[-1]

    monkeypatch.setattr(optuna, "create_study", recording_create_study)

    def metrics(prediction):
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    def trainer():
        args = AgoraConfig(
            str(tmp_path),
            agora_rounds=1,
            eval_strategy="epoch",
            **{**COMMON, "num_train_epochs": 1},
        )
        return AgoraTrainer(
            model_init=lambda: ToyMLP(ToyConfig()),
            args=args,
            train_dataset=train,
            eval_dataset=dev,
            labeller=torus_labeller,
            compute_metrics=metrics,
        )

    # A given grid: a grid sampler visits each point once, the objective is maximised, and a median pruner watches.
    grid = {"learning_rate": [1e-2, 1e-4], "per_device_train_batch_size": [16]}
    best = trainer().hyperparameter_search(n_trials=2, grid=grid)
    study = studies[-1]
    visited = sorted(trial.params["learning_rate"] for trial in study.trials)
    assert visited == [1e-4, 1e-2]  # both points, no repeat (a random sampler would repeat or leave the grid)
    assert isinstance(study.sampler, optuna.samplers.GridSampler)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    objectives = {trial.params["learning_rate"]: trial.value for trial in study.trials}
    assert best.objective == max(objectives.values()) and best.hyperparameters["learning_rate"] == max(
        objectives, key=objectives.get
    )
    # No grid: the trials are drawn from AGORA_GRID, every axis of it, each trial a distinct grid point.
    trainer().hyperparameter_search(n_trials=2)
    study = studies[-1]
    assert len(study.trials) == 2
    points = [tuple(sorted(trial.params.items())) for trial in study.trials]
    assert len(set(points)) == 2
    for trial in study.trials:
        assert set(trial.params) == set(AGORA_GRID)
        assert all(value in AGORA_GRID[name] for name, value in trial.params.items())
    assert isinstance(study.sampler, optuna.samplers.GridSampler)
