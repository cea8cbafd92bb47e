"""Issue 22 item 4: compress silences only what is wrong in context (Map bars, the 'TRAIN this model' warning)."""

from __future__ import annotations

import logging

import datasets
import torch
import transformers

from hf_bort.compress.quiet import quiet_progress
from tiny_shapes import TINY_SHAPE


def _load_with_new_head(path):
    return transformers.BertForSequenceClassification.from_pretrained(path, num_labels=2)


def test_the_new_head_warning_is_dropped_for_the_source_only(tmp_path, caplog):
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**TINY_SHAPE)).save_pretrained(tmp_path / "src")
    transformers.BertModel(transformers.BertConfig(**TINY_SHAPE)).save_pretrained(tmp_path / "other")

    def warned(path) -> bool:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            _load_with_new_head(path)
        messages = [record.getMessage() for record in caplog.records]
        return any("You should probably TRAIN" in m or "LOAD REPORT" in m for m in messages)  # 4.x / 5.x

    assert warned(tmp_path / "src")  # the warning as transformers gives it
    with quiet_progress(str(tmp_path / "src")):
        assert not warned(tmp_path / "src")  # the head compress fine-tunes next
        assert warned(tmp_path / "other")  # another checkpoint: kept
    assert warned(tmp_path / "src")  # the filter is gone after the block


def test_datasets_bars_are_off_inside_and_restored(caplog):
    datasets.enable_progress_bars()
    with caplog.at_level(logging.INFO, logger="hf_bort.compress.quiet"), quiet_progress("x"):
        assert datasets.are_progress_bars_disabled()
    assert not datasets.are_progress_bars_disabled()


def test_trainer_bars_are_nested_under_the_stage_bar(tmp_path):
    from transformers import ProgressCallback, Trainer, TrainingArguments

    from hf_bort.compress.quiet import nest_trainer_progress

    model = transformers.BertForSequenceClassification(transformers.BertConfig(**TINY_SHAPE))
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path), report_to=[], disable_tqdm=False))
    nest_trainer_progress(trainer)
    (nested,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)]
    assert type(nested).__name__ == "NestedProgressCallback"

    class State:
        is_world_process_zero, max_steps = True, 3

    nested.on_train_begin(trainer.args, State(), None)
    assert nested.training_bar.pos in (1, -1) and not nested.training_bar.leave  # one line under the stage bar
    nested.on_train_end(trainer.args, State(), None)
    quiet = Trainer(model=model, args=TrainingArguments(str(tmp_path), report_to=[], disable_tqdm=True))
    before = [type(c) for c in quiet.callback_handler.callbacks]
    nest_trainer_progress(quiet)  # bars off (--no-show-progress): the Trainer keeps its log printer as it was
    assert [type(c) for c in quiet.callback_handler.callbacks] == before
