"""[`AgoraConfig`]: `TrainingArguments` plus the Agora fields."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

SAMPLER_NAMES = ("embedding", "text", "pool")
# `resume_from_checkpoint` words (any case) that mean "the newest complete checkpoint in output_dir", as
# `Trainer.train(resume_from_checkpoint=True)` reads True; "false" means a fresh run. A folder with one of these
# names is given as a path: `./last`.
RESUME_NEWEST = ("true", "last")
RESUME_NONE = ("false",)


def resume_value(value):
    """`resume_from_checkpoint` as `AgoraTrainer.train` takes it: `True` for "True"/"last" (the command line gives
    strings), `None` for "False", otherwise unchanged (a checkpoint path, a bool or None)."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in RESUME_NEWEST:
            return True
        if word in RESUME_NONE:
            return None
    return value


VERSIONS = ("v1", "v2")
CANDIDATE_SOURCES = ("near_errors", "pool")
UNCERTAINTIES = ("margin", "entropy", "random")
DIVERSITIES = ("kcenter", "none")


@dataclass
class AgoraConfig(TrainingArguments):
    """
    Training arguments for [`AgoraTrainer`]: every `TrainingArguments` field plus the Agora fields (prefix `agora_`).

    How the standard fields are read:

    - `num_train_epochs` (or `max_steps` when > 0) sets the length of **one round**, measured on the original training
      set: a round is `ceil(num_train_epochs * batches(train) / gradient_accumulation_steps)` optimizer steps
      (`max_steps` optimizer steps when set). The whole run is `agora_rounds + 1` rounds (round 0 is plain training).
    - v2 (`agora_version="v2"`, the default): the learning-rate schedule (`lr_scheduler_type`,
      `warmup_ratio`/`warmup_steps`) covers one round and restarts every round (`agora_round_schedule`); the weights
      and the optimizer state carry over from round to round unless `agora_retrain=True`, which restarts every round
      after round 0 from the initial weights with a fresh optimizer state. v1, or `agora_round_schedule=False`: the
      schedule spans the whole run.
    - v2 splits the dev set (`eval_dataset`) into a selection part and a stopping part (`agora_selection_share`);
      Trainer evaluates on the stopping part only.
    - One Trainer epoch is one round: `save_strategy="epoch"` / `eval_strategy="epoch"` act once per round.

    Defaults that differ from `TrainingArguments`: `report_to="none"` when not given (the Agora statistics go to
    `state.log_history` either way). Everything else keeps Trainer's defaults.

    Example:

    ```python
    >>> from hf_bort import AgoraConfig
    >>> args = AgoraConfig("out", agora_rounds=3, agora_sampler="text", agora_samples_per_error=4)
    >>> args.agora_rounds
    3
    ```
    """

    agora_rounds: int = field(
        default=3, metadata={"help": "Augmentation rounds after round 0 (plain training on train); at least 1."}
    )
    agora_samples_per_error: int = field(
        default=4, metadata={"help": "New points sampled around each misclassified dev point; at least 1."}
    )
    agora_version: str = field(
        default="v2",
        metadata={
            "help": "'v2' (default): selection/stopping split of dev, errors on selection + gold train rows + teacher "
            "disagreements, candidates near them in the student's own space scored by its uncertainty with "
            "diversity and a class cap, budget spread over rounds, soft teacher labels, optional self-training and "
            "optional per-round retraining. 'v1': the first Agora (dev errors only, fixed neighbours, hard labels, "
            "one schedule), kept for the ablation; the v2-only fields are then ignored.",
            "choices": list(VERSIONS),
        },
    )
    agora_sampler: str | None = field(
        default=None,
        metadata={
            "help": "Where candidates come from: 'embedding' (Gaussian noise on the input embeddings), 'text' (token "
            "substitution by embedding-nearest tokens, or a masked LM) or 'pool' (an unlabelled pool; v1: nearest "
            "neighbours in a sentence-embedding space; v2: in the student's own space). Default: 'pool' when an "
            "unlabelled pool is given, else 'embedding'.",
            "choices": list(SAMPLER_NAMES),
        },
    )
    agora_radius: float = field(
        default=0.1,
        metadata={
            "help": "Neighbourhood size. 'embedding': noise std as a fraction of the point's embedding RMS; 'text': "
            "fraction of the non-special tokens replaced (at least one); unused by 'pool'. Must be > 0."
        },
    )
    agora_top_k: int = field(
        default=8,
        metadata={"help": "'text' sampler: candidate replacements per token (nearest tokens or masked-LM top-k)."},
    )
    agora_confidence_threshold: float = field(
        default=0.0,
        metadata={"help": "Labels whose labeller confidence is below this are dropped; in [0, 1]."},
    )
    agora_replay: int = field(
        default=0,
        metadata={
            "help": "Replay: each round also re-samples around the dev errors of this many earlier rounds (those "
            "rounds are re-run on the current model), so fixed errors are not forgotten; >= 0."
        },
    )
    agora_budget: int | None = field(
        default=None,
        metadata={
            "help": "Maximum number of samples sent to the labeller over the whole run (None: no limit). v2 spreads "
            "it over the rounds (remaining budget / remaining rounds); without a budget, v2 sends at most "
            "agora_samples_per_error calls per error per round."
        },
    )
    agora_max_errors: int | None = field(
        default=None,
        metadata={"help": "Maximum dev errors sampled around per round, chosen at random (None: all)."},
    )
    agora_max_length: int = field(
        default=128, metadata={"help": "Tokenizer max length for pool texts and labeller inputs."}
    )
    agora_text_column: str = field(
        default="text", metadata={"help": "Column holding the raw text in the datasets and the pool, when present."}
    )
    agora_seed: int | None = field(default=None, metadata={"help": "Seed of the Agora samplers (None: use `seed`)."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Continue from a checkpoint folder, or `True` / `last` for the newest complete checkpoint in "
            "output_dir (as Trainer.train(resume_from_checkpoint=True)); a folder named `last`: ./last."
        },
    )
    # v2 fields ---------------------------------------------------------------------------------------------------
    agora_selection_share: float = field(
        default=0.5,
        metadata={
            "help": "v2: share of the dev set (stratified, seeded) in the selection part, where errors are found and "
            "whose gold labels join training after round 0; the rest is the stopping part (model choice, early "
            "stopping, hyperparameter_search: Trainer's eval_dataset). In (0, 1)."
        },
    )
    agora_candidates: str = field(
        default="near_errors",
        metadata={
            "help": "v2: 'near_errors' (the neighbours of the errors in the student's space) or 'pool' (the whole "
            "unused pool: plain active learning, the baseline).",
            "choices": list(CANDIDATE_SOURCES),
        },
    )
    agora_candidates_per_error: int = field(
        default=16,
        metadata={"help": "v2: candidates per error (pool neighbours, or sampler draws without a pool); >= 1."},
    )
    agora_uncertainty: str = field(
        default="margin",
        metadata={
            "help": "v2: how candidates are scored: 'margin', 'entropy', or 'random' (the random baseline).",
            "choices": list(UNCERTAINTIES),
        },
    )
    agora_diversity: str = field(
        default="kcenter",
        metadata={
            "help": "v2: 'kcenter' (greedy k-center over the most uncertain candidates) or 'none' (score order).",
            "choices": list(DIVERSITIES),
        },
    )
    agora_class_cap: float | None = field(
        default=0.6,
        metadata={"help": "v2: most share of a round's teacher calls per student-predicted class (None: no cap)."},
    )
    agora_soft_labels: bool = field(
        default=True,
        metadata={"help": "v2: train on the teacher's probabilities (KL at agora_temperature) instead of its argmax."},
    )
    agora_temperature: float = field(default=2.0, metadata={"help": "v2: temperature of the soft-label KL; > 0."})
    agora_confidence_weighting: bool = field(
        default=True, metadata={"help": "v2: weight each teacher row by the teacher's confidence (max probability)."}
    )
    agora_self_training: bool = field(
        default=True,
        metadata={
            "help": "v2: each round, also train on pool points the student is confident about (its own labels, "
            "down-weighted, no teacher calls); replaced every round. Needs a pool."
        },
    )
    agora_self_training_threshold: float = field(
        default=0.9, metadata={"help": "v2: student confidence needed for self-training; in [0, 1]."}
    )
    agora_self_training_weight: float = field(
        default=0.3, metadata={"help": "v2: loss weight of a self-trained row (gold rows weigh 1); > 0."}
    )
    agora_self_training_max: int = field(
        default=256,
        metadata={"help": "v2: most self-trained rows per round, split evenly over the classes; >= 1."},
    )
    agora_retrain: bool = field(
        default=False,
        metadata={
            "help": "v2: every round after round 0 restarts from the initial weights (fresh optimizer state) on the "
            "grown training set, so the final model is one training run on the final set. Off by default: the "
            "issue 21 benchmark's stopping split favoured continuing across rounds (docs/agora.md)."
        },
    )
    agora_round_schedule: bool = field(
        default=True,
        metadata={
            "help": "v2: the learning-rate schedule (warm-up, decay) restarts every round instead of spanning the run."
        },
    )

    def __post_init__(self):
        if self.report_to is None:
            self.report_to = "none"
        super().__post_init__()
        self.resume_from_checkpoint = resume_value(self.resume_from_checkpoint)
        checks = [
            ("agora_rounds", isinstance(self.agora_rounds, int) and self.agora_rounds >= 1, "an integer >= 1"),
            (
                "agora_samples_per_error",
                isinstance(self.agora_samples_per_error, int) and self.agora_samples_per_error >= 1,
                "an integer >= 1",
            ),
            ("agora_version", self.agora_version in VERSIONS, f"one of {list(VERSIONS)}"),
            (
                "agora_sampler",
                self.agora_sampler is None or self.agora_sampler in SAMPLER_NAMES,
                f"None or one of {list(SAMPLER_NAMES)}",
            ),
            ("agora_selection_share", 0.0 < self.agora_selection_share < 1.0, "a number in (0, 1)"),
            ("agora_candidates", self.agora_candidates in CANDIDATE_SOURCES, f"one of {list(CANDIDATE_SOURCES)}"),
            ("agora_candidates_per_error", self.agora_candidates_per_error >= 1, "an integer >= 1"),
            ("agora_uncertainty", self.agora_uncertainty in UNCERTAINTIES, f"one of {list(UNCERTAINTIES)}"),
            ("agora_diversity", self.agora_diversity in DIVERSITIES, f"one of {list(DIVERSITIES)}"),
            (
                "agora_class_cap",
                self.agora_class_cap is None or 0.0 < self.agora_class_cap <= 1.0,
                "None or a number in (0, 1]",
            ),
            ("agora_temperature", self.agora_temperature > 0, "a number > 0"),
            ("agora_self_training_threshold", 0.0 <= self.agora_self_training_threshold <= 1.0, "a number in [0, 1]"),
            ("agora_self_training_weight", self.agora_self_training_weight > 0, "a number > 0"),
            ("agora_self_training_max", self.agora_self_training_max >= 1, "an integer >= 1"),
            ("agora_radius", self.agora_radius > 0, "a number > 0"),
            ("agora_top_k", self.agora_top_k >= 1, "an integer >= 1"),
            ("agora_confidence_threshold", 0.0 <= self.agora_confidence_threshold <= 1.0, "a number in [0, 1]"),
            ("agora_replay", self.agora_replay >= 0, "an integer >= 0"),
            ("agora_budget", self.agora_budget is None or self.agora_budget >= 1, "None or an integer >= 1"),
            ("agora_max_errors", self.agora_max_errors is None or self.agora_max_errors >= 1, "None or >= 1"),
            ("agora_max_length", self.agora_max_length >= 2, "an integer >= 2"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"AgoraConfig.{name} must be {expected}, got {getattr(self, name)!r}.")
        if self.agora_sampler == "text" and self.agora_radius > 1:
            raise ValueError(f"AgoraConfig.agora_radius must be <= 1 for the 'text' sampler, got {self.agora_radius}.")

    @property
    def agora_v2(self) -> bool:
        return self.agora_version == "v2"

    @property
    def agora_generator_seed(self) -> int:
        return self.seed if self.agora_seed is None else self.agora_seed
