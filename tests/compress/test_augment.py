"""`hf_bort.compress.augment`: the source's masked-LM head found or not, and one round within its budget."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from hf_bort.agora import selection
from hf_bort.compress import augment, recipe
from tiny_shapes import TINY_SHAPE
from tiny_tasks import make_rows


@pytest.fixture
def tiny_mlm_source(tmp_path, bert_tok):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    path = tmp_path / "tiny-mlm"
    BertForMaskedLM(BertConfig(**TINY_SHAPE)).save_pretrained(path)
    bert_tok.save_pretrained(path)
    return path


def _classifier(seed: int):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=2)).eval()


def test_the_source_masked_lm_head_is_found_only_when_there_is_one(tiny_source, tiny_mlm_source):
    model, why = augment.source_masked_lm(str(tiny_mlm_source))
    assert model is not None and why == "the source's masked-LM head"
    model, why = augment.source_masked_lm(str(tiny_source))  # a bare encoder: the head would be random
    assert model is None and why == "the source has no masked-LM head"


@pytest.mark.parametrize("budget", [3, 7])
def test_one_round_fills_masked_tokens_and_stays_within_the_budget(tiny_mlm_source, bert_tok, budget, monkeypatch):
    rows = make_rows(48, seed=3)
    train = recipe.tokenise(Dataset.from_list(rows), bert_tok, 16)
    masked_lm, note = augment.source_masked_lm(str(tiny_mlm_source))
    chosen_by = []
    real = selection.select_near_errors

    def spy(*args, **kwargs):  # the selection is Agora v2's, not a second implementation
        chosen_by.append(kwargs.get("error_embeddings") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "select_near_errors", spy)
    added, record = augment.augment(
        _classifier(1),
        _classifier(2),
        bert_tok,
        train,
        [row["text"] for row in rows],
        budget=budget,
        max_length=16,
        seed=0,
        masked_lm=masked_lm,
        masked_lm_note=note,
    )
    assert chosen_by == [True]
    assert record["errors"]["error_rows"] > 0
    assert record["candidates_from"].endswith("masked-LM fill (the source's masked-LM head)")
    assert 0 < record["teacher_calls"] == record["rows_added"] == len(added) <= budget
    train_texts = {row["text"] for row in rows}
    assert all(row["text"] not in train_texts and len(row["teacher_logits"]) == 2 for row in added)
    assert len({row["text"] for row in added}) == len(added)


def test_saved_rows_come_back_and_a_lost_file_is_an_error(tmp_path):
    rows = [{"text": "a good film", "teacher_logits": [0.1, 0.9]}]
    augment.save_rows(tmp_path, rows)
    assert augment.load_rows(tmp_path, {"rows_added": 1}) == rows
    assert augment.load_rows(tmp_path, {"skipped": "augment_budget=0", "rows_added": 0}) == []
    (tmp_path / "augment" / "rows.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="added 1 rows"):
        augment.load_rows(tmp_path, {"rows_added": 1})


def test_a_labelled_round_comes_back_for_a_resumed_stage(tmp_path):
    assert augment.load_round(tmp_path) is None  # no teacher calls made yet
    rows = [{"text": "a dull film", "teacher_logits": [0.7, 0.2]}]
    augment.save_round(tmp_path, rows, {"rows_added": 1, "teacher_calls": 1})
    assert augment.load_round(tmp_path) == (rows, {"rows_added": 1, "teacher_calls": 1})


def test_the_task_student_is_copied_once_and_removed(tmp_path):
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "model.safetensors").write_text("task")
    copy = augment.start_copy(tmp_path)
    (tmp_path / "student" / "model.safetensors").write_text("augmented")  # the stage replaced out/student
    assert augment.start_copy(tmp_path) == copy and (copy / "model.safetensors").read_text() == "task"
    augment.remove_start_copy(tmp_path)
    assert not copy.exists() and (tmp_path / "student").is_dir()
