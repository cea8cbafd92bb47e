from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel, ElectraConfig, RobertaConfig, RobertaModel

from hf_bort import BortConfig, BortForMaskedLM, count_parameters
from hf_bort.models.bort.convert import TASK_TO_BORT_CLASS


@st.composite
def bort_configs(draw):
    layers = draw(st.integers(1, 3))
    head_size = draw(st.integers(1, 6))
    hidden = draw(st.integers(2, 24))
    return BortConfig(
        vocab_size=draw(st.integers(5, 40)),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=draw(st.lists(st.integers(1, 4), min_size=layers, max_size=layers)),
        attention_head_size=head_size,
        intermediate_size=draw(st.lists(st.integers(1, 40), min_size=layers, max_size=layers)),
        max_position_embeddings=draw(st.integers(4, 20)),
        type_vocab_size=draw(st.integers(0, 2)),
        embedding_size=draw(st.one_of(st.none(), st.integers(2, 16))),
        add_pooling_layer=draw(st.booleans()),
        position_embedding_type=draw(st.sampled_from(["absolute", "roberta"])),
        tie_word_embeddings=draw(st.booleans()),
        num_labels=draw(st.integers(1, 4)),
        pad_token_id=1,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=bort_configs(), task=st.sampled_from(sorted(TASK_TO_BORT_CLASS)))
def test_counter_equals_built_model(config, task):
    if task == "question-answering":
        config.num_labels = 2
    model = TASK_TO_BORT_CLASS[task](config)
    assert count_parameters(config, task).total == sum(p.numel() for p in model.parameters())


def test_bert_large_reproduced_without_building():
    large = BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    count = count_parameters(large)
    assert (count.total, count.embeddings) == (335_141_888, 31_782_912)


def test_presets():
    assert count_parameters(BortConfig.from_preset("bort")).total == 76_156_928
    assert count_parameters(BortConfig.from_preset("bort-paper")).total == 55_350_016
    # The same shapes with RoBERTa's 514 position rows.
    assert count_parameters(BortConfig.from_preset("bort", max_position_embeddings=514)).total == 76_158_976
    assert count_parameters(BortConfig.from_preset("bort-paper", max_position_embeddings=514)).total == 55_351_552
    assert count_parameters(BortConfig.from_preset("bort-paper")).embeddings == 38_999_040  # the paper's "39M"


@pytest.mark.parametrize(
    ("config", "model_class"),
    [
        (BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37), BertModel),
        (
            RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
            RobertaModel,
        ),
    ],
)
def test_source_configs_are_counted_as_their_bort(config, model_class):
    assert count_parameters(config).total == sum(p.numel() for p in model_class(config).parameters())


def test_electra_embedding_projection_counted():
    config = ElectraConfig(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=4)
    from transformers import ElectraModel

    assert count_parameters(config).total == sum(p.numel() for p in ElectraModel(config).parameters())


def test_untied_decoder_counted():
    config = BortConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, vocab_size=30, tie_word_embeddings=False
    )
    model = BortForMaskedLM(config)
    assert model.cls.predictions.decoder.weight.data_ptr() != model.bort.embeddings.word_embeddings.weight.data_ptr()
    assert count_parameters(config, "fill-mask").total == sum(p.numel() for p in model.parameters())


def test_unknown_task():
    with pytest.raises(ValueError, match="`task` must be one of"):
        count_parameters(BortConfig(), task="translation")
