"""Which checkpoint an [`AgoraTrainer`] run resumes from: a `checkpoint-N` folder is complete once it holds the Agora
state and Trainer's state; `resume_from_checkpoint=True` takes the newest complete one, and a missing or incomplete
checkpoint raises instead of training from scratch."""

from __future__ import annotations

import logging
import os
import re

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .callback import STATE_NAME
from .config import resume_value

logger = logging.getLogger(__name__)


_CHECKPOINT = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")


INITIAL_NAME = "agora_initial_weights.pt"  # v2 with retraining: the weights every round restarts from


TRAINER_STATE_NAME = "trainer_state.json"  # Trainer's last file in a checkpoint: present only once it is complete


def checkpoint_is_complete(path: str | os.PathLike) -> bool:
    """Whether an AgoraTrainer checkpoint folder was written to the end (Agora state and Trainer state present)."""
    return os.path.isfile(os.path.join(path, STATE_NAME)) and os.path.isfile(os.path.join(path, TRAINER_STATE_NAME))


def newest_complete_checkpoint(output_dir: str | os.PathLike) -> tuple[str | None, list[str]]:
    """
    The highest-step `checkpoint-N` folder of `output_dir` that [`checkpoint_is_complete`], and the newer ones skipped
    because a kill cut them short.
    """
    if not os.path.isdir(output_dir):
        return None, []
    found = sorted(
        ((int(match.group(1)), name) for name in os.listdir(output_dir) if (match := _CHECKPOINT.fullmatch(name))),
        reverse=True,
    )
    skipped = []
    for _, name in found:
        path = os.path.join(output_dir, name)
        if not os.path.isdir(path):
            continue
        if checkpoint_is_complete(path):
            return path, skipped
        skipped.append(path)
    return None, skipped


def resolve_resume_checkpoint(resume_from_checkpoint: str | os.PathLike | bool | None, output_dir: str) -> str | None:
    """
    The checkpoint folder `train(resume_from_checkpoint=...)` continues from, or `None` for a fresh run. `True` (or
    the strings "True" / "last", as the command line gives them) means the newest complete checkpoint in
    `output_dir` (newer, incomplete ones are skipped with a warning); a path must be a complete AgoraTrainer
    checkpoint. Anything else raises before training: a missing path never silently starts from scratch.
    """
    resume_from_checkpoint = resume_value(resume_from_checkpoint)
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        path, skipped = newest_complete_checkpoint(output_dir)
        if path is None:
            raise ValueError(
                f"resume_from_checkpoint=True but {output_dir!r} holds no complete checkpoint"
                + (f" (incomplete, cut short while saving: {skipped})." if skipped else ".")
            )
        if skipped:
            logger.warning("Resuming from %s: the newer %s were cut short while saving; skipped.", path, skipped)
        return path
    path = os.fspath(resume_from_checkpoint)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"resume_from_checkpoint {path!r} does not exist or is not a folder.")
    if not checkpoint_is_complete(path):
        newest, _ = newest_complete_checkpoint(os.path.dirname(os.path.abspath(path)))
        raise ValueError(
            f"resume_from_checkpoint {path!r} is not a complete AgoraTrainer checkpoint (it needs {STATE_NAME} and "
            f"{TRAINER_STATE_NAME}: cut short while saving, or written by another trainer)."
            + (f" The newest complete one beside it is {newest!r}." if newest else "")
        )
    return path
