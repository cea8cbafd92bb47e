"""DistilBERT, MPNet, DeBERTa-v2/v3 and ModernBERT convert to Bort exactly: every head, padding, every output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_bort import (
    BortConfig,
    BortForMaskedLM,
    BortForSequenceClassification,
    BortModel,
    bort_config_from,
    convert_to_bort,
    count_parameters,
)
from hf_bort.cli import main
from tiny_families import (
    DEBERTA,
    DEBERTA_V3,
    DISTILBERT,
    FAMILIES,
    HEADS,
    MPNET,
    make_source,
    modernbert_config,
    padded_batch,
)
from tiny_tokenizers import bert_tokenizer


def _inputs(head: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if head == "ForMultipleChoice":
        return {key: value.unsqueeze(1).expand(-1, 3, -1).contiguous() for key, value in batch.items()}
    return batch


@torch.no_grad()
def max_difference(source, bort, inputs) -> float:
    """Largest difference over every layer's hidden states (valid tokens) and every output tensor of the head."""
    expected = source(**inputs, output_hidden_states=True)
    actual = bort(**inputs, output_hidden_states=True)
    mask = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1]).bool()
    assert len(expected.hidden_states) == len(actual.hidden_states)
    pairs = list(zip(actual.hidden_states, expected.hidden_states, strict=True))
    if source.config.model_type == "modernbert" and transformers.__version__.startswith("4."):
        # transformers 4.x's ModernBERT returns its last layer's output before the final norm; 5.x and Bort after
        # (so that it equals `last_hidden_state`, which is compared below).
        pairs = pairs[:-1]
    worst = max((a[mask] - e[mask]).abs().max().item() for a, e in pairs)
    compared = 0
    for key, value in expected.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and key != "loss":
            difference = actual[key] - value
            if source.config.model_type == "modernbert" and difference.shape[:2] == mask.shape:
                # A padded query whose every key in its local window is padding has no defined output: eager
                # attention spreads it uniformly, transformers 5.x's SDPA path does not. Compare real tokens.
                difference = difference[mask]
            worst = max(worst, difference.abs().max().item())
            compared += 1
    assert compared >= 1
    return worst


CASES = [(family, head) for family in FAMILIES for head in HEADS]


@pytest.mark.parametrize(("family", "head"), CASES)
def test_every_head_converts_exactly(family, head):
    source = make_source(family, head)
    bort = convert_to_bort(source)
    assert bort.config.model_type == "bort" and type(bort).__name__ == "Bort" + head
    assert bort.config.type_vocab_size == getattr(source.config, "type_vocab_size", 0)
    assert max_difference(source, bort.eval(), _inputs(head, padded_batch())) < 1e-5
    # the Bort model counts exactly what it holds
    assert sum(p.numel() for p in bort.parameters()) == count_parameters(bort.config, _task(head)).total


def _task(head: str) -> str:
    return {
        "Model": "feature-extraction",
        "ForMaskedLM": "fill-mask",
        "ForSequenceClassification": "text-classification",
        "ForTokenClassification": "token-classification",
        "ForQuestionAnswering": "question-answering",
        "ForMultipleChoice": "multiple-choice",
    }[head]


def test_mpnet_long_input_uses_the_logarithmic_buckets():
    """Past 8 tokens MPNet's buckets grow logarithmically, past 128 they saturate: 200 tokens cover all three."""
    source = make_source("mpnet", "Model")
    bort = convert_to_bort(source).eval()
    assert max_difference(source, bort, padded_batch(200)) < 1e-5


def test_mpnet_relative_bias_is_compared_not_ignored():
    """A wrong bias entry shows: the comparison is not vacuous."""
    source = make_source("mpnet", "Model")
    bort = convert_to_bort(source).eval()
    assert bort.config.relative_attention_num_buckets == 32 and bort.config.position_embedding_type == "roberta"
    with torch.no_grad():
        bort.encoder.relative_attention_bias.weight[17].add_(1.0)  # the bucket of distance -1
    assert max_difference(source, bort, padded_batch()) > 1e-3


def test_distilbert_comparison_is_not_vacuous():
    source = make_source("distilbert-sinusoidal", "Model")
    bort = convert_to_bort(source).eval()
    with torch.no_grad():
        bort.embeddings.position_embeddings.weight[3, 5] += 0.5
    assert max_difference(source, bort, padded_batch()) > 1e-3


def test_mpnet_table_rows_past_the_computed_buckets_are_dropped():
    """MPNet computes 32 buckets whatever `relative_attention_num_buckets` says: extra rows are never read."""
    torch.manual_seed(0)
    source = transformers.MPNetModel(transformers.MPNetConfig(**{**MPNET, "relative_attention_num_buckets": 40}))
    bort = convert_to_bort(source.eval()).eval()
    assert bort.encoder.relative_attention_bias.weight.shape == (32, 4)
    assert max_difference(source, bort, padded_batch()) < 1e-5
    with pytest.raises(ValueError, match="32 relative-position buckets"):
        convert_to_bort(
            transformers.MPNetModel(transformers.MPNetConfig(**{**MPNET, "relative_attention_num_buckets": 16}))
        )


def test_distilbert_classifier_is_the_relu_pooler_and_dropouts_follow_the_task():
    bort = convert_to_bort(make_source("distilbert", "ForSequenceClassification"))
    assert bort.config.pooler_hidden_act == "relu" and bort.bort.pooler is not None
    config = transformers.DistilBertConfig(**{**DISTILBERT, "dropout": 0.1, "seq_classif_dropout": 0.3})
    assert convert_to_bort(transformers.DistilBertForSequenceClassification(config)).dropout.p == 0.3
    assert convert_to_bort(transformers.DistilBertForTokenClassification(config)).dropout.p == 0.1
    assert not convert_to_bort(make_source("distilbert", "Model")).config.add_pooling_layer


def test_mpnet_mlm_head_with_another_activation_is_refused():
    config = transformers.MPNetConfig(**{**MPNET, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="applies GELU while `hidden_act` is 'relu'"):
        convert_to_bort(transformers.MPNetForMaskedLM(config))
    assert isinstance(convert_to_bort(transformers.MPNetModel(config)), BortModel)  # the encoder itself is fine


@pytest.mark.parametrize(
    "family", ["distilbert", "mpnet", "deberta-v3", "deberta-v2", "modernbert", "modernbert-biases-mean"]
)
def test_parameter_counter_matches_the_source(family):
    """The counter reads the source config directly and equals what transformers' own classes hold."""
    for head, task in (("Model", "feature-extraction"), ("ForMaskedLM", "fill-mask")):
        source = make_source(family, head)
        total = sum(p.numel() for p in source.parameters())  # the tied MLM decoder is counted once
        assert count_parameters(source.config, task).total == total


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "deberta-v3", "modernbert"])
def test_cli_convert_saves_tokenizer_and_reloads(tmp_path, capsys, family):
    import json

    source = make_source(family, "ForSequenceClassification")
    source.save_pretrained(tmp_path / "src")
    bert_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "src")
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class"] == "BortForSequenceClassification" and report["max_abs_difference"] < 1e-5
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "dst").eval()
    assert isinstance(reloaded, BortForSequenceClassification)
    assert max_difference(source, reloaded, padded_batch()) < 1e-5
    assert AutoTokenizer.from_pretrained(tmp_path / "dst")("the movie").input_ids == [2, 5, 7, 3]


REMOTE = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoModelForMaskedLM
    path = sys.argv[1]
    model = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True).eval()
    assert "hf_bort" not in sys.modules, "hf_bort was imported"
    expected = sys.argv[2]
    found = model.config.relative_attention_head_index or model.config.pos_att_type or model.config.attention_window
    assert str(found) == expected, expected
    inputs = torch.load(path + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, path + "/remote_logits.pt")
    """
)


@pytest.mark.slow  # a fresh interpreter loads the saved checkpoint (~10 s)
def test_relative_bias_with_per_layer_heads_reloads_as_remote_code(tmp_path):
    """Per-layer heads reading shared bias columns travel in config.json and the shipped modeling file."""
    torch.manual_seed(0)
    config = BortConfig(
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=[2, 1],
        attention_head_size=8,
        intermediate_size=[16, 4],
        max_position_embeddings=40,
        type_vocab_size=0,
        position_embedding_type="roberta",
        relative_attention_num_buckets=32,
        relative_attention_head_index=[[2, 0], [1]],
    )
    model = BortForMaskedLM(config).eval()
    assert model.bort.encoder.relative_attention_bias.weight.shape == (32, 3)
    with torch.no_grad():
        model.bort.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    model.save_pretrained(tmp_path)
    batch = padded_batch()
    torch.save(batch, tmp_path / "inputs.pt")
    _check_remote_logits(model, tmp_path, batch, "[[2, 0], [1]]")


def _check_remote_logits(model, folder, batch, expected_config: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(folder / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE, str(folder), expected_config],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(torch.load(folder / "remote_logits.pt"), expected)


@pytest.mark.slow  # a fresh interpreter loads the saved checkpoint (~10 s)
def test_converted_deberta_reloads_as_remote_code(tmp_path):
    """Disentangled attention travels in the shipped modeling file: plain transformers reproduces the logits."""
    model = convert_to_bort(make_source("deberta-v3", "ForMaskedLM")).eval()
    model.save_pretrained(tmp_path)
    batch = padded_batch()
    torch.save(batch, tmp_path / "inputs.pt")
    _check_remote_logits(model, tmp_path, batch, "['c2p', 'p2c']")


def test_relative_bias_config_is_validated():
    base = dict(vocab_size=99, hidden_size=24, num_hidden_layers=2, num_attention_heads=3)
    with pytest.raises(ValueError, match="`relative_attention_num_buckets` must be 0 or at least 4"):
        BortConfig(**base, relative_attention_num_buckets=2)
    with pytest.raises(ValueError, match="only meaningful with a relative bias"):
        BortConfig(**base, relative_attention_head_index=[[0, 1, 2], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"`relative_attention_head_index\[1\]` must list one table column per head"):
        BortConfig(**base, relative_attention_num_buckets=32, relative_attention_head_index=[[0, 1, 2], [0]])
    with pytest.raises(ValueError, match="`relative_attention_max_distance`"):
        BortConfig(**base, relative_attention_num_buckets=32, relative_attention_max_distance=8)
    config = BortConfig(
        **base, relative_attention_num_buckets=32, relative_attention_head_index=[[0, 4, 1], [2, 3, 0]]
    )
    assert config.relative_attention_bias_heads == 5
    assert BortConfig.from_dict(config.to_dict()).layer_relative_attention_head_index == [[0, 4, 1], [2, 3, 0]]


def test_deberta_long_input_and_the_legacy_free_mlm_head():
    """60 tokens reach DeBERTa's logarithmic buckets; `legacy=False` MLM heads (`lm_predictions`) convert too (5.x)."""
    source = make_source("deberta-v3", "Model")
    assert max_difference(source, convert_to_bort(source).eval(), padded_batch(60)) < 1e-5
    if int(transformers.__version__.split(".")[0]) < 5:
        return  # transformers 4.x ties `lm_predictions.lm_head.dense` to the word embeddings: the source cannot run
    config = transformers.DebertaV2Config(**DEBERTA, **DEBERTA_V3, legacy=False)
    torch.manual_seed(0)
    source = transformers.DebertaV2ForMaskedLM(config).eval()
    assert max_difference(source, convert_to_bort(source).eval(), padded_batch()) < 1e-5


def test_deberta_relative_embeddings_are_compared_not_ignored():
    source = make_source("deberta-v3", "Model")
    bort = convert_to_bort(source).eval()
    config = bort.config
    assert config.pos_att_type == ["c2p", "p2c"] and config.position_embedding_type == "none"
    assert config.mask_padded_tokens and config.relative_embeddings_layer_norm and config.relative_span == 8
    with torch.no_grad():
        bort.encoder.rel_embeddings.weight[9, 5] += 0.5  # one entry: a constant row would vanish in the LayerNorm
    assert max_difference(source, bort, padded_batch()) > 1e-3


def test_deberta_layouts_bort_cannot_represent_are_refused_before_any_work():
    for overrides, message in (
        ({"share_att_key": False}, "share_att_key=False"),
        ({"conv_kernel_size": 3}, "conv_kernel_size"),
        ({"embedding_size": 16}, "embedding_size"),
        ({"relative_attention": False}, "pos_att_type` without `relative_attention"),
    ):
        config = transformers.DebertaV2Config(**{**DEBERTA, **DEBERTA_V3, **overrides})
        with pytest.raises(ValueError, match=message):
            bort_config_from(config)


def test_deberta_multiply_adds_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from hf_bort.ose.costs import encoder_multiply_adds

    bort = convert_to_bort(make_source("deberta-v3", "Model")).eval()
    with FlopCounterMode(display=False) as counter:  # explicit attention so that the counter sees its matmuls
        bort(torch.randint(3, 99, (1, 12)), output_attentions=True)
    assert encoder_multiply_adds(bort.config, 12) == counter.get_total_flops() // 2


@pytest.mark.slow  # a fresh interpreter loads the saved checkpoint (~10 s)
def test_converted_modernbert_reloads_as_remote_code(tmp_path):
    """Rotary θ, windows, pre-LayerNorm and GeGLU travel in the shipped modeling file."""
    model = convert_to_bort(make_source("modernbert-biases-mean", "ForMaskedLM")).eval()
    model.save_pretrained(tmp_path)
    batch = padded_batch()
    torch.save(batch, tmp_path / "inputs.pt")
    _check_remote_logits(model, tmp_path, batch, "[0, 4]")


def test_modernbert_layout_is_stored_per_layer():
    config = convert_to_bort(make_source("modernbert", "ForSequenceClassification")).config
    assert config.position_embedding_type == "rotary" and config.type_vocab_size == 0
    assert config.rotary_theta == [160000.0, 10.0] and config.attention_window == [0, 4]
    assert config.attention_layer_norm == [False, True] and config.pre_layer_norm and config.gated_ffn
    assert not (config.attention_bias or config.ffn_bias or config.layer_norm_bias or config.head_bias)
    assert config.pooler_layer_norm and config.token_head_transform and config.classifier_pooling == "cls"
    assert convert_to_bort(make_source("modernbert-biases-mean", "Model")).config.layer_norm_bias


def test_modernbert_long_input_and_comparison_is_not_vacuous():
    """40 tokens: the window (keys within 2) and both θ matter; changing either shows in the outputs."""
    source = make_source("modernbert", "Model")
    bort = convert_to_bort(source).eval()
    assert max_difference(source, bort, padded_batch(40)) < 1e-5
    for field, value in (("attention_window", [0, 0]), ("rotary_theta", [160000.0, 10000.0])):
        config = BortConfig.from_dict({**bort.config.to_dict(), field: value})
        changed = BortModel(config).eval()
        changed.load_state_dict(bort.state_dict())
        assert max_difference(source, changed, padded_batch(40)) > 1e-3, field
    with torch.no_grad():
        bort.encoder.layer[1].intermediate.gate.weight[3, 5] += 0.5
    assert max_difference(source, bort, padded_batch()) > 1e-3


def test_modernbert_layouts_bort_cannot_represent_are_refused():
    config = modernbert_config(classifier_activation="relu")
    with pytest.raises(ValueError, match="classifier_activation"):
        convert_to_bort(transformers.ModernBertForMaskedLM(config))
    assert isinstance(convert_to_bort(transformers.ModernBertModel(config)), BortModel)
    if int(transformers.__version__.split(".")[0]) >= 5:
        config = modernbert_config()
        config.rope_parameters["full_attention"]["rope_type"] = "linear"
        with pytest.raises(ValueError, match="rope_type 'linear'"):
            bort_config_from(config)


def test_modernbert_multiply_adds_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from hf_bort.ose.costs import encoder_multiply_adds

    bort = convert_to_bort(make_source("modernbert", "Model")).eval()
    with FlopCounterMode(display=False) as counter:
        bort(torch.randint(3, 99, (1, 12)), output_attentions=True)
    assert encoder_multiply_adds(bort.config, 12) == counter.get_total_flops() // 2


@pytest.mark.parametrize("family", ["modernbert", "modernbert-biases-mean"])
@pytest.mark.parametrize("head", HEADS)
def test_modernbert_counter_matches_every_head_of_the_source(family, head):
    """ModernBERT's prediction head is Bort's pooler (token heads included): the counts still match the source's."""
    source = make_source(family, head)
    assert count_parameters(source.config, _task(head)).total == sum(p.numel() for p in source.parameters())


def test_modernbert_fields_are_validated():
    base = dict(vocab_size=99, hidden_size=24, num_hidden_layers=2, num_attention_heads=3)
    for overrides, message in (
        ({"attention_window": [0, 4, 4]}, "`attention_window` has 3 entries"),
        ({"attention_window": [0, -4]}, r"`attention_window\[1\]` is out of range"),
        ({"rotary_theta": [1e4, "x"]}, r"`rotary_theta\[1\]` must be a float"),
        ({"attention_layer_norm": [False, True]}, "only with `pre_layer_norm=True`"),
        ({"classifier_pooling": "max"}, "`classifier_pooling` must be one of"),
        ({"gated_ffn": 1}, "`gated_ffn` must be a bool"),
        ({"position_embedding_type": "rotary", "attention_head_size": 7}, "must be even for rotary"),
    ):
        with pytest.raises(ValueError, match=message):
            BortConfig(**base, **overrides)
    config = BortConfig(
        **base, pre_layer_norm=True, attention_layer_norm=[False, True], rotary_theta=[1e5, 1e4], attention_window=8
    )
    assert config.layer_attention_window == [8, 8] and config.layer_rotary_theta == [1e5, 1e4]
    assert BortConfig.from_dict(config.to_dict()).layer_attention_layer_norm == [False, True]


def test_modernbert_mlm_without_decoder_bias_gets_a_zero_bias():
    torch.manual_seed(0)
    source = transformers.ModernBertForMaskedLM(modernbert_config(decoder_bias=False)).eval()
    bort = convert_to_bort(source).eval()
    assert not bort.cls.predictions.bias.any()
    assert max_difference(source, bort, padded_batch()) < 1e-5
