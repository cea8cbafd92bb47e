"""Extraction from DistilBERT, MPNet, DeBERTa-v3, ModernBERT: full candidate equals the source, exact parts, reload."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
import transformers

from hf_bort import BortConfig, convert_to_bort, count_parameters
from hf_bort.ose import Candidate, OSESearch, SearchSpace, compute_importance, extract_subnetwork, save_extracted
from tiny_families import make_source, modernbert_config, padded_batch

HEADS_TO_TASK = {"ForMaskedLM": "fill-mask", "ForSequenceClassification": "text-classification"}


def _source(family: str, head: str):
    return convert_to_bort(make_source(family, head)).eval()


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert"])
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


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert"])
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


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert"])
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


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert"])
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


def test_modernbert_dropped_layers_keep_their_type_theta_and_norm(tmp_path):
    """From [global, local, global, local], keeping layers 1 and 3 gives two local layers with their own θ and
    attention norms; equal to the source whose layers 0 and 2 are silenced (pre-LayerNorm: then identities)."""
    config = modernbert_config(num_hidden_layers=4, global_attn_every_n_layers=2)
    torch.manual_seed(0)
    source = convert_to_bort(transformers.ModernBertForMaskedLM(config).eval()).eval()
    assert source.config.attention_window == [0, 4, 0, 4]
    batch = padded_batch(20)
    scores = compute_importance(source, [batch])
    scores.layers = torch.tensor([0.1, 0.9, 0.2, 0.8])
    student = extract_subnetwork(source, Candidate(2, 4, 32, 37, 8), scores).eval()
    assert student.ose_plan.layers == [1, 3]
    assert student.config.attention_window == [4, 4] and student.config.rotary_theta == [10.0, 10.0]
    assert student.config.attention_layer_norm == [True, True]  # layer 1 keeps the norm layer 0 lacks
    silenced = copy.deepcopy(source)
    with torch.no_grad():
        for index in (0, 2):
            silenced.bort.encoder.layer[index].attention.output.dense.weight.zero_()
            silenced.bort.encoder.layer[index].output.dense.weight.zero_()
        expected, actual = silenced(**batch).logits, student(**batch).logits
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(actual[mask], expected[mask], atol=1e-5, rtol=1e-5)


def test_modernbert_glu_neurons_cut_both_halves():
    """Dropping GeGLU neurons removes the same rows of `dense` and `gate`: equal to the source with them silenced."""
    source = _source("modernbert", "Model")
    batch = padded_batch()
    scores = compute_importance(source, [batch])
    student = extract_subnetwork(source, Candidate(2, 4, 32, 20, 8), scores).eval()
    silenced = copy.deepcopy(source)
    with torch.no_grad():
        for layer, kept in zip(silenced.encoder.layer, student.ose_plan.neurons, strict=True):
            dropped = [index for index in range(37) if index not in kept]
            layer.output.dense.weight[:, dropped] = 0.0
        for student_layer, source_layer, kept in zip(
            student.encoder.layer, source.encoder.layer, student.ose_plan.neurons, strict=True
        ):
            assert torch.equal(student_layer.intermediate.gate.weight, source_layer.intermediate.gate.weight[kept])
        expected, actual = silenced(**batch).last_hidden_state, student(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(actual[mask], expected[mask], atol=1e-5, rtol=1e-5)


REMOTE = (
    "import sys, torch\n"
    "from transformers import AutoModelForSequenceClassification\n"
    "model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
    "assert 'hf_bort' not in sys.modules\n"
    "inputs = torch.load(sys.argv[1] + '/inputs.pt')\n"
    "with torch.no_grad():\n"
    "    torch.save(model(**inputs).logits, sys.argv[1] + '/remote.pt')\n"
)


@pytest.mark.slow  # a fresh interpreter loads the saved checkpoint (~10 s)
def test_smaller_modernbert_candidate_reloads_as_remote_code(tmp_path):
    import os
    import subprocess

    source = _source("modernbert-biases-mean", "ForSequenceClassification")
    batch = padded_batch()
    scores = compute_importance(source, [batch])
    student = extract_subnetwork(source, Candidate(1, 2, 24, 10, 8), scores, heterogeneous=True).eval()
    student.save_pretrained(tmp_path)
    torch.save(batch, tmp_path / "inputs.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "remote.pt"), student(**batch).logits)


@pytest.mark.parametrize("head", ["ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice"])
def test_modernbert_token_and_choice_heads_extract_exactly(head):
    """The pooler transform on every token (token classification, QA) and the pooled choice head are sliced too."""
    source = _source("modernbert-biases-mean", head)
    batch = padded_batch()
    if head == "ForMultipleChoice":
        batch = {key: value.unsqueeze(1).expand(-1, 2, -1).contiguous() for key, value in batch.items()}
    scores = compute_importance(source.bort, [padded_batch()])  # the encoder's scores serve every head
    full = extract_subnetwork(source, Candidate(2, 4, 32, 37, 8), scores).eval()
    with torch.no_grad():
        expected, actual = source(**batch), full(**batch)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor) and key != "loss":
            assert torch.equal(actual[key], value), key
    smaller = extract_subnetwork(source, Candidate(1, 2, 16, 8, 8), scores).eval()
    count = sum(p.numel() for p in smaller.parameters())
    task = {"ForTokenClassification": "token-classification", "ForQuestionAnswering": "question-answering"}
    assert count == count_parameters(smaller.config, task.get(head, "multiple-choice")).total


def test_latency_cache_tells_modernbert_layouts_apart():
    """A ModernBERT candidate (rotary, windows, GeGLU) never reuses the latency of a BERT one of the same sizes."""
    from hf_bort.ose.costs import LatencyCache

    modern = _source("modernbert", "Model").config
    plain = BortConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    modern_key = LatencyCache.shape_key(modern, 1, 16, "pytorch")
    assert '"gated_ffn": true' in modern_key and '"windows": [0, 4]' in modern_key
    assert "layout" not in LatencyCache.shape_key(plain, 1, 16, "pytorch")  # BERT keys unchanged
