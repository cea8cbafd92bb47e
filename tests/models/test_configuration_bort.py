from __future__ import annotations

import pytest

from hf_bort import BortConfig


def test_defaults_resolve_head_size_and_per_layer_lists():
    config = BortConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=[10, 20, 30])
    assert config.attention_head_size == 16
    assert config.layer_num_attention_heads == [4, 4, 4]
    assert config.layer_intermediate_sizes == [10, 20, 30]
    assert config.embedding_width == 64


def test_round_trip_through_dict_keeps_lists(tmp_path):
    config = BortConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=(3, 1), attention_head_size=5)
    config.save_pretrained(tmp_path)
    reloaded = BortConfig.from_pretrained(tmp_path)
    assert reloaded.num_attention_heads == [3, 1] and reloaded.attention_head_size == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "num_attention_heads"),
        ({"num_hidden_layers": 3, "num_attention_heads": [4, 4]}, "num_attention_heads"),
        ({"num_hidden_layers": 2, "intermediate_size": [8, 8, 8]}, "intermediate_size"),
        ({"num_hidden_layers": 2, "num_attention_heads": [4, 2]}, "attention_head_size"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": -8}, "hidden_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"intermediate_size": 0}, "intermediate_size"),
        ({"num_hidden_layers": 2, "intermediate_size": [8, -1]}, r"intermediate_size\[1\]"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"attention_head_size": 0}, "attention_head_size"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"type_vocab_size": -1}, "type_vocab_size"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
        ({"embedding_size": 0}, "embedding_size"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"position_embedding_type": "roberta", "pad_token_id": None}, "pad_token_id"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
        ({"hidden_size": True}, "hidden_size"),
    ],
)
def test_invalid_fields_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        BortConfig(**kwargs)


def test_explicit_head_size_allows_non_dividing_heads():
    from hf_bort import BortModel

    config = BortConfig(
        hidden_size=30, num_hidden_layers=1, num_attention_heads=4, attention_head_size=8, vocab_size=9
    )
    assert config.layer_num_attention_heads == [4]
    assert BortModel(config).encoder.layer[0].attention.self.query.weight.shape == (32, 30)


def test_presets_and_overrides():
    bort = BortConfig.from_preset("bort")
    assert (bort.hidden_size, bort.intermediate_size, bort.num_hidden_layers, bort.vocab_size) == (1024, 768, 4, 50265)
    paper = BortConfig.from_preset("bort-paper", num_labels=3)
    assert (paper.hidden_size, paper.intermediate_size, paper.num_labels) == (768, 1024, 3)
    with pytest.raises(ValueError, match="Unknown preset 'bert'"):
        BortConfig.from_preset("bert")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"layer_norm_eps": float("inf")}, "layer_norm_eps"),
        ({"layer_norm_eps": float("nan")}, "layer_norm_eps"),
        ({"layer_norm_eps": 5.0}, "layer_norm_eps"),
        ({"layer_norm_eps": None}, "layer_norm_eps"),
        ({"layer_norm_eps": "1e-12"}, "layer_norm_eps"),
        ({"initializer_range": float("inf")}, "initializer_range"),
        ({"initializer_range": float("nan")}, "initializer_range"),
        ({"initializer_range": -0.02}, "initializer_range"),
        ({"initializer_range": None}, "initializer_range"),
        ({"initializer_range": "0.02"}, "initializer_range"),
        ({"hidden_dropout_prob": "0.1"}, "hidden_dropout_prob"),
        ({"hidden_dropout_prob": None}, "hidden_dropout_prob"),
        ({"attention_probs_dropout_prob": float("nan")}, "attention_probs_dropout_prob"),
        ({"classifier_dropout": "0.1"}, "classifier_dropout"),
        ({"hidden_dropout_prob": True}, "hidden_dropout_prob"),
        ({"pad_token_id": -1}, "pad_token_id"),
        ({"pad_token_id": 99, "vocab_size": 99}, "pad_token_id"),
        ({"pad_token_id": "1"}, "pad_token_id"),
        ({"hidden_act": "not-an-activation"}, "hidden_act"),
        ({"hidden_act": None}, "hidden_act"),
        ({"pooler_hidden_act": "tanhh"}, "pooler_hidden_act"),
        ({"vocab_size": 10**12}, "vocab_size"),
        ({"hidden_size": 2**25}, "hidden_size"),
        ({"intermediate_size": 2**25}, "intermediate_size"),
        ({"max_position_embeddings": 2**25}, "max_position_embeddings"),
        ({"type_vocab_size": 2**25}, "type_vocab_size"),
        ({"embedding_size": 2**25}, "embedding_size"),
        ({"attention_head_size": 2**25}, "attention_head_size"),
        ({"num_hidden_layers": 10**6}, "num_hidden_layers"),
    ],
)
def test_values_that_would_break_the_model_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        BortConfig(**kwargs)


def test_valid_edge_values_are_accepted():
    from hf_bort.models.bort.configuration_bort import MAX_NUM_HIDDEN_LAYERS, MAX_SIZE

    config = BortConfig(
        pad_token_id=None,
        initializer_range=0,
        hidden_dropout_prob=0,
        layer_norm_eps=1,
        hidden_act="gelu_new",
        vocab_size=MAX_SIZE,
        hidden_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
    )
    assert config.pad_token_id is None and config.vocab_size == MAX_SIZE
    assert BortConfig(num_hidden_layers=MAX_NUM_HIDDEN_LAYERS, intermediate_size=8).num_hidden_layers == 1024
