"""OSE on headed checkpoints: every candidate inherits real weights, and nothing is initialised randomly unasked."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModel,
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

from hf_bort import BortForSequenceClassification, BortModel, convert_to_bort
from hf_bort.ose import Candidate, CandidateResult, OSESearch, SearchSpace, compute_importance, extract_subnetwork
from tiny_shapes import TINY_SHAPE

HEADS = {
    "sequence-classification": BertForSequenceClassification,
    "masked-lm": BertForMaskedLM,
    "token-classification": BertForTokenClassification,
    "question-answering": BertForQuestionAnswering,
}
FULL = Candidate(2, 4, 32, 37, 8)


def _saved(tmp_path, model_class, bert_tok):
    torch.manual_seed(0)
    labels = 2 if model_class is BertForQuestionAnswering else 3
    model = model_class(BertConfig(**TINY_SHAPE, num_labels=labels)).eval()
    if model_class is BertForMaskedLM:  # a non-zero output bias, so a re-initialised bias would show
        with torch.no_grad():
            model.cls.predictions.bias.normal_()
    path = tmp_path / model_class.__name__
    model.save_pretrained(path)
    bert_tok.save_pretrained(path)
    return path, model


@pytest.mark.parametrize("head", sorted(HEADS))
def test_full_size_candidate_equals_the_headed_source(tmp_path, bert_tok, texts, batch, head, caplog):
    path, source = _saved(tmp_path, HEADS[head], bert_tok)
    space = SearchSpace.from_source(
        path, num_layers=(1, 2), num_heads=(4,), hidden_sizes=(32,), intermediate_sizes=(37,)
    )
    search = OSESearch(
        path, space, text_dataset=texts, output_dir=tmp_path / "run", batch_size=4, num_eval_batches=2, max_steps=2
    )
    with caplog.at_level(logging.WARNING):
        student = search.build_student(FULL).eval()  # what the search trains (the encoder, or the MLM)
        extracted = search.extract(FULL).eval()  # what is saved: the source's own head, sliced
    assert not [r for r in caplog.records if "random" in r.getMessage()]
    base = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        expected = base(**batch).last_hidden_state
        encoder = student if isinstance(student, BortModel) else student.bort
        assert (encoder(**batch).last_hidden_state - expected).abs().max() < 1e-5
        ours = extracted(**batch)
        theirs = source(**batch)
    names = ("start_logits", "end_logits") if head == "question-answering" else ("logits",)
    for name in names:
        assert (getattr(ours, name) - getattr(theirs, name)).abs().max() < 1e-5


def test_headed_to_base_and_base_to_headed_extraction(calibration, caplog):
    torch.manual_seed(0)
    classifier = convert_to_bort(BertForSequenceClassification(BertConfig(**TINY_SHAPE)).eval()).eval()
    scores = compute_importance(classifier, calibration)
    encoder = extract_subnetwork(classifier, FULL, scores, model_class=BortModel).eval()
    with torch.no_grad():
        assert torch.equal(encoder(**calibration[0]).last_hidden_state, classifier.bort(**calibration[0])[0])
    bare = convert_to_bort(AutoModel.from_config(BertConfig(**TINY_SHAPE)).eval()).eval()
    with pytest.raises(ValueError, match=r"leaves 2 tensors without source weights \(classifier.weight"):
        extract_subnetwork(bare, FULL, scores, model_class=BortForSequenceClassification)
    with caplog.at_level(logging.WARNING):
        student = extract_subnetwork(bare, FULL, scores, model_class=BortForSequenceClassification, init_missing=True)
    assert isinstance(student, BortForSequenceClassification)
    assert sum("initialised 2 tensors randomly on request" in r.getMessage() for r in caplog.records) == 1


def _task_data(texts):
    labels = [int("good" in t or "great" in t) for t in texts]
    return Dataset.from_dict({"text": texts[:60], "label": labels[:60]}), Dataset.from_dict(
        {"text": texts[60:], "label": labels[60:]}
    )


def _task_search(tmp_path, bert_tok, texts, **kwargs):
    torch.manual_seed(0)
    source = BertForSequenceClassification(BertConfig(**TINY_SHAPE)).eval()
    train, dev = _task_data(texts)
    space = SearchSpace.from_source(
        source, num_layers=(1, 2), num_heads=(2, 4), hidden_sizes=(32,), intermediate_sizes=(8,)
    )
    defaults = dict(
        tokenizer=bert_tok,
        task_dataset=train,
        eval_dataset=dev,
        output_dir=tmp_path / "run",
        batch_size=4,
        epsilon=0.5,
        interval_size=2,
        max_steps=4,
        show_progress=False,
    )
    return OSESearch(source, space, **{**defaults, **kwargs})


def test_task_objective_ranks_by_dev_kl_and_records_dev_accuracy(tmp_path, bert_tok, texts):
    search = _task_search(tmp_path, bert_tok, texts)
    result = search.run()
    assert search.objective == "task" and "dev KL" in result.objective_name
    records = [json.loads(line) for line in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["metrics"]["dev_accuracy"] <= 1.0 for r in records)
    error, _, metrics = search.evaluate_candidate(FULL, 0)  # the teacher itself: KL 0, its own accuracy
    assert error < 1e-10
    chosen = result.choose(max_cost_ratio=0.9)
    assert chosen.error == min(r.error for r in result.final if r.multiply_adds <= 0.9 * result.source_multiply_adds)


def test_warm_intervals_continue_training_exactly(tmp_path, bert_tok, texts):
    candidate = Candidate(1, 2, 32, 8, 8)
    warm = _task_search(tmp_path / "warm", bert_tok, texts)
    warm.evaluate_candidate(candidate, 2)  # first interval: state saved
    assert warm._state_path(candidate).is_file()
    error_warm, _, metrics = warm.evaluate_candidate(candidate, 4)
    assert metrics["resumed_from_step"] == 2
    cold = _task_search(tmp_path / "cold", bert_tok, texts)
    error_cold, _, cold_metrics = cold.evaluate_candidate(candidate, 4)
    assert cold_metrics["resumed_from_step"] == 0
    assert error_warm == pytest.approx(error_cold, rel=1e-5, abs=1e-7)


def test_task_search_refuses_labels_the_head_cannot_hold_and_a_headless_source(tmp_path, bert_tok, texts):
    search = _task_search(tmp_path, bert_tok, texts)
    search.task_rows = [(text, 5) for text, _ in search.task_rows]
    with pytest.raises(ValueError, match=r"Labels \[5\] do not fit the source classifier's 2 labels"):
        search.run()
    train, dev = _task_data(texts)
    encoder = AutoModel.from_config(BertConfig(**TINY_SHAPE))
    with pytest.raises(ValueError, match="needs a fine-tuned sequence classifier"):
        OSESearch(encoder, tokenizer=bert_tok, task_dataset=train, eval_dataset=dev, output_dir=tmp_path / "x").run()


def test_impossible_values_are_refused():
    good = dict(
        candidate=FULL,
        params=10,
        encoder_params=5,
        multiply_adds=7,
        latency_ms=None,
        error=0.5,
        steps=2,
        seed=0,
        wall_time=0.1,
    )
    CandidateResult(**good)
    for field, value, message in (
        ("error", float("nan"), "`error`"),
        ("error", -1.0, "`error`"),
        ("latency_ms", -5.0, "`latency_ms`"),
        ("params", 0, "`params`"),
    ):
        with pytest.raises(ValueError, match=message):
            CandidateResult(**{**good, field: value})


def test_cost_is_part_of_the_run_id(tmp_path, bert_tok, texts):
    a = _task_search(tmp_path, bert_tok, texts, sequence_length=16)
    b = _task_search(tmp_path, bert_tok, texts, cost="latency_ms", sequence_length=16)
    a._prepare()
    b._prepare()
    assert a.run_id != b.run_id


def test_latency_cost_longer_than_the_source_positions_is_refused_before_timing(tmp_path, bert_tok, texts):
    search = _task_search(tmp_path, bert_tok, texts, cost="latency_ms")  # default 128 tokens; the source has 64
    with pytest.raises(ValueError, match=r"`sequence_length` 128 .* \(64 positions\)"):
        search._prepare()
    assert not (tmp_path / "run" / "latency.json").exists()


def test_budget_with_no_candidate_fails_before_training(tmp_path, bert_tok, texts, monkeypatch):
    search = _task_search(tmp_path, bert_tok, texts, max_cost_ratio=0.001)
    monkeypatch.setattr(OSESearch, "evaluate_candidate", lambda *a: pytest.fail("trained"))
    with pytest.raises(ValueError, match="No candidate of the search space fits the budget"):
        search.run()
