from __future__ import annotations

import pytest
import torch
from transformers import pipeline

from hf_bort import BortConfig, BortForMaskedLM, BortForSequenceClassification, BortModel
from tiny_tokenizers import bert_tokenizer


@pytest.fixture
def tokenizer(tmp_path):
    return bert_tokenizer(tmp_path / "tok")


def _config(**kwargs):
    return BortConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
        **kwargs,
    )


def test_fill_mask(tokenizer):
    torch.manual_seed(0)
    model = BortForMaskedLM(_config()).eval()
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, top_k=3)
    results = fill("the movie was [MASK]")
    assert len(results) == 3
    inputs = tokenizer("the movie was [MASK]", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, inputs.input_ids[0].tolist().index(tokenizer.mask_token_id)]
    assert results[0]["token"] == int(logits.argmax())


def test_text_classification(tokenizer):
    torch.manual_seed(0)
    model = BortForSequenceClassification(_config(num_labels=2, id2label={0: "rotten", 1: "fresh"})).eval()
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    result = classify("a very good film")[0]
    inputs = tokenizer("a very good film", return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits.softmax(-1)[0]
    assert result["label"] == ["rotten", "fresh"][int(probs.argmax())]
    assert result["score"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_feature_extraction(tokenizer):
    torch.manual_seed(0)
    model = BortModel(_config()).eval()
    extract = pipeline("feature-extraction", model=model, tokenizer=tokenizer)
    features = torch.tensor(extract("the plot is dull")[0])
    inputs = tokenizer("the plot is dull", return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state[0]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
