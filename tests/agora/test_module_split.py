"""`agora/trainer.py` was split into modules with one job each (checkpoints, training data, hyperparameter search);
every name stays importable from `agora.trainer`, and every agora module is under 500 lines."""

from __future__ import annotations

from pathlib import Path

import hf_bort.agora
from hf_bort.agora import checkpoints, hyperparameters, train_data, trainer

MOVED_FROM_TRAINER = {
    checkpoints: [
        "_CHECKPOINT",
        "INITIAL_NAME",
        "TRAINER_STATE_NAME",
        "checkpoint_is_complete",
        "newest_complete_checkpoint",
        "resolve_resume_checkpoint",
    ],
    train_data: ["AgoraTrainDataset", "RoundSampler"],
    hyperparameters: ["AGORA_GRID"],
}


def test_trainer_names_stay_importable_from_agora_trainer():
    for module, names in MOVED_FROM_TRAINER.items():
        for name in names:
            assert getattr(trainer, name) is getattr(module, name), name
    assert (hf_bort.agora.AGORA_GRID, hf_bort.agora.AgoraTrainer) == (trainer.AGORA_GRID, trainer.AgoraTrainer)
    assert trainer.AgoraTrainer.__module__ == "hf_bort.agora.trainer"


def test_hyperparameter_search_is_the_mixin_method_and_extends_trainer():
    from transformers import Trainer

    search = hyperparameters.AgoraHyperparameterSearch.__dict__["hyperparameter_search"]
    assert trainer.AgoraTrainer.hyperparameter_search is search
    mro = trainer.AgoraTrainer.__mro__
    assert mro.index(hyperparameters.AgoraHyperparameterSearch) < mro.index(Trainer)  # its super() is Trainer's


def test_every_agora_module_is_under_500_lines():
    folder = Path(hf_bort.agora.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    assert {"trainer.py", "checkpoints.py", "train_data.py", "hyperparameters.py"} <= set(sizes)
    assert {name: size for name, size in sizes.items() if size > 500} == {}
