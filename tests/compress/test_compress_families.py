"""`compress` on DistilBERT, MPNet, DeBERTa-v3 and ModernBERT sources: search and student inherit the weights."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from hf_bort import CompressionConfig, compress
from tiny_tasks import fast_settings
from tiny_tokenizers import bert_tokenizer

SOURCES = {
    "distilbert": lambda: transformers.DistilBertModel(
        transformers.DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37)
    ),
    "mpnet": lambda: transformers.MPNetModel(
        transformers.MPNetConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
        )
    ),
    "deberta-v3": lambda: transformers.DebertaV2Model(
        transformers.DebertaV2Config(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            position_buckets=8,
            max_relative_positions=64,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
        )
    ),
    "modernbert": lambda: transformers.ModernBertModel(
        transformers.ModernBertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            local_attention=4,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
        )
    ),
}


@pytest.mark.parametrize("family", list(SOURCES))
def test_compress_extracts_from_the_family(tmp_path, family, data_dir):
    torch.manual_seed(0)
    source = tmp_path / family
    SOURCES[family]().save_pretrained(source)
    bert_tokenizer(source)
    # as DistilBERT's and MPNet's own tokenizers: no token_type_ids (neither model accepts them)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(
        source, model_input_names=["input_ids", "attention_mask"]
    )
    tokenizer.save_pretrained(source)
    config = CompressionConfig(
        model=str(source), dataset=str(data_dir), output_dir=str(tmp_path / "out"), **fast_settings()
    )
    result = compress(config)
    report = result.report
    assert report["search"]["searched"] and report["search"]["candidates_searched"] >= 2
    assert report["reload"]["ok"]
    student = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "student")
    assert type(student).__name__ == "BortForSequenceClassification"
    assert student.config.type_vocab_size == 0
    assert (student.config.relative_attention_num_buckets == 32) is (family == "mpnet")
    expected_act = {"distilbert": "relu", "mpnet": "tanh", "deberta-v3": "gelu", "modernbert": "gelu"}[family]
    assert student.config.pooler_hidden_act == expected_act
    if family == "modernbert":  # every kept layer keeps its attention type
        assert student.config.gated_ffn and student.config.position_embedding_type == "rotary"
        assert len(student.config.attention_window) == student.config.num_hidden_layers
    assert (student.config.pos_att_type == ["c2p", "p2c"]) is (family == "deberta-v3")
    saved = json.loads((tmp_path / "out" / "compression_report.json").read_text())
    assert saved["student"]["multiply_adds_ratio"] <= 0.6
