"""Agora's hyperparameter search: the original Bort/Agora grid and `hyperparameter_search` with its defaults (optuna,
grid sampler, median pruner), mixed into [`AgoraTrainer`]."""

from __future__ import annotations

from collections.abc import Callable

#: The hyperparameter grid of the original Bort/Agora code (README of amazon-research/bort).
AGORA_GRID: dict[str, list] = {
    "learning_rate": [1e-4, 1e-5, 9e-6],
    "weight_decay": [0.0, 10.0, 100.0, 350.0],
    "warmup_ratio": [0.35, 0.40, 0.45, 0.50],
    "per_device_train_batch_size": [8, 16],
}


class AgoraHyperparameterSearch:
    """`AgoraTrainer.hyperparameter_search` (a mixin placed before `Trainer`, whose method it extends)."""

    def hyperparameter_search(
        self,
        hp_space: Callable | None = None,
        compute_objective: Callable | None = None,
        n_trials: int = 20,
        direction: str | None = None,
        backend: str = "optuna",
        hp_name: Callable | None = None,
        grid: dict[str, list] | None = None,
        **kwargs,
    ):
        """
        `Trainer.hyperparameter_search` with Agora's defaults: optuna over the original grid ([`AGORA_GRID`], or
        `grid`) with a `GridSampler` and a `MedianPruner` (trials stop early when their intermediate evaluation falls
        below the median; needs `eval_strategy` other than "no"). Needs `model_init`. `direction` defaults to
        "maximize" when `compute_metrics` is set, else "minimize" (eval loss).
        """
        if backend != "optuna":
            raise ValueError(f"AgoraTrainer.hyperparameter_search backend must be 'optuna', got {backend!r}.")
        try:
            import optuna
        except ImportError as error:
            raise ImportError('Agora hyperparameter search needs optuna: pip install "hf-bort[search]"') from error
        space = dict(grid or AGORA_GRID)
        if hp_space is None:

            def hp_space(trial):
                return {name: trial.suggest_categorical(name, values) for name, values in space.items()}

            kwargs.setdefault("sampler", optuna.samplers.GridSampler(space, seed=self.args.seed))
        kwargs.setdefault("pruner", optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
        if direction is None:
            direction = "maximize" if self.compute_metrics is not None else "minimize"
        return super().hyperparameter_search(
            hp_space=hp_space,
            compute_objective=compute_objective,
            n_trials=n_trials,
            direction=direction,
            backend=backend,
            hp_name=hp_name,
            **kwargs,
        )
