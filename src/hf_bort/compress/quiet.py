"""
Quiet, honest output for `compress`: only what is wrong in context is silenced, everything else is kept.

- `datasets`' "Map" / "Filter" bars (one per tokenised split) are turned off for the run and restored after it: the
  stage bar says which stage runs.
- transformers' "Some weights of … were not initialized from the model checkpoint at SOURCE and are newly
  initialized: [classifier…] You should probably TRAIN this model on a down-stream task" (5.x: a "LOAD REPORT" whose
  only rows are MISSING head weights) is dropped when it is about
  the source given to `compress` and names only the classification head (and pooler) it is about to fine-tune; it is
  replaced by one INFO line. The same warning for any other checkpoint, or naming any other weight, still shows.
- The Trainer's bars (fine-tuning, distillation) sit one line under the stage bar and are cleared when done
  ([`nest_trainer_progress`]), so one bar line per stage stays.
"""

from __future__ import annotations

import functools
import logging
import re
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

_NEW_HEAD = re.compile(
    r"newly initialized: \[(?P<names>[^\]]*)\]", re.DOTALL
)  # transformers 4.x and 5.x word it the same way
_HEAD_PARTS = ("classifier", "pooler", "score.")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _NewHeadFilter(logging.Filter):
    """Drops the 'newly initialized … TRAIN' record for `source` when it names head weights only."""

    def __init__(self, source: str):
        super().__init__()
        self.source = str(source)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = _ANSI.sub("", record.getMessage())
        except Exception:  # a record that does not format is not ours to judge
            return True
        names = self._new_head_names(message)
        if not names or not all(any(part in name for part in _HEAD_PARTS) for name in names):
            return True
        logger.info("A new classification head for %s (%s) is initialised; it is fine-tuned next.", self.source, names)
        return False

    def _new_head_names(self, message: str) -> list[str]:
        """The newly initialised weights a transformers loading warning about `source` names (4.x: one sentence;
        5.x: a LOAD REPORT table), or [] when it is not such a warning or also reports anything else."""
        if "You should probably TRAIN" in message and f"checkpoint at {self.source} " in message:  # 4.x
            match = _NEW_HEAD.search(message)
            return [name.strip(" '\"") for name in match["names"].split(",")] if match else []
        if "LOAD REPORT" in message and f"from: {self.source}" in message:  # 5.x
            if any(word in message for word in ("UNEXPECTED", "MISMATCH", "CONVERSION")):
                return []
            return [line.split("|")[0].strip() for line in message.splitlines() if "| MISSING" in line]
        return []


def _transformers_targets() -> list[Any]:
    """The loggers and handlers transformers' loading warnings go through."""
    targets: list[Any] = [logging.getLogger("transformers.modeling_utils")]
    targets += list(logging.getLogger("transformers").handlers)
    return targets


@contextmanager
def quiet_progress(source: str | None = None):
    """Within the block: no `datasets` progress bars, and no 'newly initialized … TRAIN' warning for the head of
    `source` that is about to be trained (see the module docstring); both restored after."""
    import datasets

    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    head_filter = _NewHeadFilter(source) if source is not None else None
    targets = _transformers_targets() if head_filter is not None else []
    for target in targets:
        target.addFilter(head_filter)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(head_filter)
        if bars_were_on:
            datasets.enable_progress_bars()


def quietly(function):
    """Decorator of `compress(config)`: runs it inside [`quiet_progress`] for `config.model`."""

    @functools.wraps(function)
    def wrapper(config, *args, **kwargs):
        with quiet_progress(getattr(config, "model", None)):
            return function(config, *args, **kwargs)

    return wrapper


def nest_trainer_progress(trainer) -> None:
    """Show `trainer`'s bars one line under the `compress` stage bar and remove them when done (its default
    `ProgressCallback` replaced); nothing changes when its bars are off (`--no-show-progress`: logs as before)."""
    from transformers import ProgressCallback

    if not any(type(callback) is ProgressCallback for callback in trainer.callback_handler.callbacks):
        return
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_nested_progress_class()())


def _nested_progress_class():
    from tqdm.auto import tqdm
    from transformers import ProgressCallback

    class NestedProgressCallback(ProgressCallback):
        """transformers' `ProgressCallback` with its bars nested under the stage bar (position 1, then 2 for
        evaluation) and cleared when finished; its log lines are kept."""

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.training_bar = tqdm(
                    total=state.max_steps, dynamic_ncols=True, position=1, leave=False, desc="  training steps"
                )
            self.current_step = 0

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if state.is_world_process_zero and eval_dataloader is not None and hasattr(eval_dataloader, "__len__"):
                if self.prediction_bar is None:
                    self.prediction_bar = tqdm(
                        total=len(eval_dataloader),
                        dynamic_ncols=True,
                        position=2 if self.training_bar is not None else 1,
                        leave=False,
                        desc="  evaluation",
                    )
                self.prediction_bar.update(1)

    return NestedProgressCallback


__all__ = ["nest_trainer_progress", "quiet_progress", "quietly"]
