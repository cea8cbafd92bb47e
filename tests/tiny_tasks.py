"""Tiny labelled text-classification data and fast compress settings for the tests."""

from __future__ import annotations

import random

POSITIVE = "good great fun".split()
NEGATIVE = "bad awful dull".split()
FILLER = "the a movie film was is very plot acting story and but it".split()


def make_rows(n: int, seed: int, num_labels: int = 2) -> list[dict]:
    """Texts whose label is carried by one word (learnable by a tiny model); `num_labels` 2 or 3."""
    rng = random.Random(seed)
    cues = [POSITIVE, NEGATIVE, ["not"]][:num_labels]
    rows = []
    for i in range(n):
        label = i % num_labels
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(cues[label]))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def fast_settings(**overrides) -> dict:
    """Tiny budgets for every stage (seconds on one thread)."""
    settings = dict(
        max_cost_ratio=0.6,
        max_length=16,
        finetune_epochs=2.0,
        finetune_min_steps=0,  # the tiny runs keep their epochs (the default raises them to 250 steps)
        weak_teacher_margin=0.0,  # a tiny teacher of 2 epochs may be no better than the majority class
        finetune_learning_rate=1e-3,
        batch_size=16,
        epsilon=0.5,
        search_base_steps=4,
        search_interval=2,
        search_batch_size=8,
        search_eval_rows=32,
        search_layers="1,2",
        search_heads="2,4",
        search_hidden="24,32",
        search_intermediate="16,37",
        distill_epochs=1.0,
        task_epochs=2.0,
        task_learning_rate=1e-3,
        measure_onnx=False,
        augment="off",  # the augmentation round (default "auto") is tested where it is the subject: test_augment*.py
        latency_runs=5,
        show_progress=False,
    )
    settings.update(overrides)
    return settings
