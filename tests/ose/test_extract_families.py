"""Extraction from DistilBERT, MPNet and DeBERTa-v3: full candidate equal to the source, exact sub-networks, reload."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import transformers

from hf_bort import convert_to_bort, count_parameters
from hf_bort.ose import Candidate, OSESearch, SearchSpace, compute_importance, extract_subnetwork, save_extracted

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_families import make_source  # noqa: E402

HEADS_TO_TASK = {"ForMaskedLM": "fill-mask", "ForSequenceClassification": "text-classification"}


def _source(family: str, head: str):
    return convert_to_bort(make_source(family, head)).eval()


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3"])
@pytest.mark.parametrize("method", ["activation", "gradient"])
def test_full_candidate_equals_the_source(family, method, calibration):
    source = _source(family, "ForMaskedLM")
    scores = compute_importance(source, calibration, method=method, mask_token_id=4)
    assert all(h.abs().sum() > 0 for h in scores.heads) and scores.layers.abs().sum() > 0
    full = extract_subnetwork(source, Candidate(2, 4, 32, 37, 8), scores).eval()
    assert full.config.relative_attention_head_index is None
    with torch.no_grad():
        expected = source(**calibration[0], output_hidden_states=True)
        actual = full(**calibration[0], output_hidden_states=True)
    assert torch.equal(expected.logits, actual.logits)
    assert all(torch.equal(a, b) for a, b in zip(expected.hidden_states, actual.hidden_states, strict=True))


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3"])
def test_removing_heads_equals_the_source_with_those_heads_silenced(family, calibration):
    """Dropping heads per layer keeps the shared MPNet bias columns of the kept heads, exactly."""
    source = _source(family, "ForSequenceClassification")
    scores = compute_importance(source, calibration)
    scores.heads = [torch.tensor([0.1, 0.2, 0.9, 0.8]), torch.tensor([0.9, 0.1, 0.2, 0.8])]  # keep {2,3} and {0,3}
    student = extract_subnetwork(source, Candidate(2, 2, 32, 37, 8), scores).eval()
    assert student.ose_plan.heads == [[2, 3], [0, 3]]
    if family == "mpnet":  # the two layers read different columns of one shared table
        assert student.ose_plan.bias_columns == [0, 2, 3]
        assert student.config.relative_attention_head_index == [[1, 2], [0, 2]]
        assert student.bort.encoder.relative_attention_bias.weight.shape == (32, 3)
    silenced = copy.deepcopy(source)
    with torch.no_grad():
        for layer, dropped in zip(silenced.bort.encoder.layer, ([0, 1], [1, 2]), strict=True):
            for head in dropped:
                layer.attention.output.dense.weight[:, head * 8 : (head + 1) * 8] = 0.0
        expected = silenced(**calibration[0], output_hidden_states=True)
        actual = student(**calibration[0], output_hidden_states=True)
    mask = calibration[0]["attention_mask"].bool()
    for a, b in zip(actual.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(a[mask], b[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(actual.logits, expected.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3"])
@pytest.mark.parametrize("head", list(HEADS_TO_TASK))
@pytest.mark.parametrize("heterogeneous", [False, True])
def test_smaller_candidates_count_train_and_reload(tmp_path, family, head, heterogeneous, calibration, bert_tok):
    source = _source(family, head)
    scores = compute_importance(source, calibration, method="gradient", mask_token_id=4)
    student = extract_subnetwork(source, Candidate(2, 2, 24, 10, 8), scores, heterogeneous=heterogeneous)
    config = student.config
    assert config.hidden_size == 24 and sum(config.layer_num_attention_heads) == 4
    assert sum(p.numel() for p in student.parameters()) == count_parameters(config, HEADS_TO_TASK[head]).total
    batch = calibration[0]
    labels = torch.tensor([0, 1, 2, 0]) if head == "ForSequenceClassification" else batch["input_ids"]
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-2)
    before = student(**batch, labels=labels).loss
    before.backward()
    optimizer.step()
    assert torch.isfinite(before)
    save_extracted(student, tmp_path / "student", bert_tok)
    reloaded = getattr(transformers, f"AutoModel{head}").from_pretrained(tmp_path / "student").eval()
    student.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, student(**batch).logits, atol=1e-6, rtol=1e-6)
    smaller = extract_subnetwork(source, Candidate(1, 1, 16, 4, 8), scores).eval()  # and even smaller runs
    with torch.no_grad():
        assert smaller(**batch).logits.isfinite().all()


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3"])
def test_search_inherits_the_source_weights(tmp_path, family, bert_tok, texts):
    """OSESearch extracts from these families (no random initialisation): the full candidate has zero error."""
    source = make_source(family, "Model")
    space = SearchSpace.from_source(
        source, num_layers=(1, 2), num_heads=(2, 4), hidden_sizes=(32,), intermediate_sizes=(37,)
    )
    search = OSESearch(
        source,
        space,
        tokenizer=bert_tok,
        text_dataset=texts,
        output_dir=tmp_path / "run",
        epsilon=0.5,
        interval_size=2,
        max_steps=2,
        batch_size=4,
        num_eval_batches=2,
        prune=False,
        show_progress=False,
    )
    result = search.run()
    assert search.bort is not None and search.bort.config.model_type == "bort"
    assert len(result.final) == len(space)
    error, _, _ = search.evaluate_candidate(Candidate(2, 4, 32, 37, 8), 0)
    assert error < 1e-10 < search.evaluate_candidate(Candidate(1, 2, 32, 37, 8), 0)[0]
