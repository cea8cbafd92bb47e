from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    BertForMaskedLM,
    ElectraConfig,
    ElectraModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from hf_bort import convert_to_bort
from hf_bort.ose import Candidate, compute_importance, extract_subnetwork, make_projection, save_extracted
from tiny_shapes import TINY_SHAPE


def _sources():
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(**TINY_SHAPE))
    roberta = RobertaForSequenceClassification(RobertaConfig(**{**TINY_SHAPE, "max_position_embeddings": 66}))
    electra = ElectraModel(ElectraConfig(**TINY_SHAPE, embedding_size=16))
    return {"bert": bert, "roberta": roberta, "electra": electra}


@pytest.mark.parametrize("name", ["bert", "roberta", "electra"])
@pytest.mark.parametrize("method", ["activation", "gradient"])
def test_nothing_removed_keeps_outputs_identical(name, method, calibration):
    source = convert_to_bort(_sources()[name].eval()).eval()
    scores = compute_importance(source, calibration, method=method, mask_token_id=4)
    assert all(h.shape == (4,) for h in scores.heads) and scores.dims.shape == (32,)
    assert scores.layers.abs().sum() > 0 and all(n.abs().sum() > 0 for n in scores.neurons)
    full = extract_subnetwork(source, Candidate(2, 4, 32, 37, 8), scores).eval()
    assert type(full) is type(source)
    with torch.no_grad():
        for a, b in zip(source(**calibration[0]).to_tuple(), full(**calibration[0]).to_tuple(), strict=False):
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b)


def _relative_error(source, student, batch) -> float:
    with torch.no_grad():
        teacher = source(**batch).last_hidden_state
        hidden = student(**batch).last_hidden_state
    projected = make_projection(hidden.shape[-1], teacher.shape[-1], student.ose_plan.dims)(hidden)
    return float(((projected - teacher) ** 2).sum() / (teacher**2).sum())


def test_removing_units_degrades_gracefully_and_monotonically(calibration):
    source = convert_to_bort(_sources()["electra"].eval()).eval()
    scores = compute_importance(source, calibration)
    errors = [
        _relative_error(source, extract_subnetwork(source, candidate, scores).eval(), calibration[0])
        for candidate in (Candidate(2, 4, 32, 37, 8), Candidate(2, 3, 32, 30, 8), Candidate(2, 2, 32, 16, 8))
    ]
    assert errors[0] < 1e-10 < errors[1] < errors[2] < 1.0, errors


def test_importance_ranking_beats_removing_the_most_important_head(calibration):
    source = convert_to_bort(_sources()["electra"].eval()).eval()
    scores = compute_importance(source, calibration)
    by_importance = extract_subnetwork(source, Candidate(2, 3, 32, 37, 8), scores).eval()
    reversed_scores = compute_importance(source, calibration)
    reversed_scores.heads = [-h for h in reversed_scores.heads]
    worst = extract_subnetwork(source, Candidate(2, 3, 32, 37, 8), reversed_scores).eval()
    assert _relative_error(source, by_importance, calibration[0]) < _relative_error(source, worst, calibration[0])


def test_heterogeneous_extraction_keeps_the_budget_and_saves_reloadable(tmp_path, calibration, bert_tok):
    source = convert_to_bort(_sources()["bert"].eval()).eval()
    scores = compute_importance(source, calibration)
    scores.heads[0] = torch.tensor([1.0, 0.9, 0.8, 0.7])
    scores.heads[1] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    student = extract_subnetwork(source, Candidate(2, 2, 24, 10, 8), scores, heterogeneous=True).eval()
    heads = student.config.layer_num_attention_heads
    assert sum(heads) == 4 and heads[0] > heads[1] >= 1
    assert sum(student.config.layer_intermediate_sizes) == 20
    save_extracted(student, tmp_path / "student", bert_tok)
    reloaded = AutoModel.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        expected = student.bort(**calibration[0]).last_hidden_state
        assert torch.allclose(reloaded(**calibration[0]).last_hidden_state, expected, atol=1e-6)
    assert (tmp_path / "student" / "tokenizer.json").is_file() or (tmp_path / "student" / "vocab.txt").is_file()


def test_extraction_rejects_growth_and_wrong_head_size(calibration):
    source = convert_to_bort(_sources()["bert"].eval()).eval()
    scores = compute_importance(source, calibration)
    with pytest.raises(ValueError, match="`hidden_size` 64 exceeds"):
        extract_subnetwork(source, Candidate(2, 4, 64, 37, 8), scores)
    with pytest.raises(ValueError, match="`head_size` 16"):
        extract_subnetwork(source, Candidate(2, 2, 32, 37, 16), scores)
    with pytest.raises(ValueError, match="`layer_selection`"):
        extract_subnetwork(source, Candidate(1, 2, 32, 37, 8), scores, layer_selection="random")
    with pytest.raises(ValueError, match="`method`"):
        compute_importance(source, calibration, method="magic")
    with pytest.raises(ValueError, match="`batches` is empty"):
        compute_importance(source, [])
