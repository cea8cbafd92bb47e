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


@dataclass
class AgoraConfig(TrainingArguments):
    """
    Training arguments for [`AgoraTrainer`]: every `TrainingArguments` field plus the Agora fields (prefix `agora_`).

    How the standard fields are read:

    - `num_train_epochs` (or `max_steps` when > 0) sets the length of **one round**, measured on the original training
      set: a round is `ceil(num_train_epochs * batches(train) / gradient_accumulation_steps)` optimizer steps
      (`max_steps` optimizer steps when set). The whole run is `agora_rounds + 1` rounds (round 0 is plain training).
    - The learning-rate schedule (`lr_scheduler_type`, `warmup_ratio`/`warmup_steps`) spans the whole run, all rounds
      together; optimizer state is kept across rounds.
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
    agora_sampler: str = field(
        default="embedding",
        metadata={
            "help": "Representation space to sample in: 'embedding' (Gaussian noise on the input embeddings), "
            "'text' (token substitution by embedding-nearest tokens, or a masked LM) or 'pool' (nearest "
            "neighbours from an unlabelled pool in sentence-embedding space).",
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
        metadata={"help": "Maximum number of samples sent to the labeller over the whole run (None: no limit)."},
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
            ("agora_sampler", self.agora_sampler in SAMPLER_NAMES, f"one of {list(SAMPLER_NAMES)}"),
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
    def agora_generator_seed(self) -> int:
        return self.seed if self.agora_seed is None else self.agora_seed
