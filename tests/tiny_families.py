"""Tiny DistilBERT, MPNet, DeBERTa-v2/v3 and ModernBERT sources (every head) for conversion, extraction, export."""

from __future__ import annotations

import torch
import transformers

# Larger initial weights than the default 0.02 so that a wrong mapping shows in the outputs, not only in rounding.
DISTILBERT = dict(
    vocab_size=99,
    dim=32,
    n_layers=2,
    n_heads=4,
    hidden_dim=37,
    dropout=0.0,
    attention_dropout=0.0,
    max_position_embeddings=64,
    initializer_range=0.2,
    num_labels=3,
)
MPNET = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    max_position_embeddings=300,
    initializer_range=0.2,
    num_labels=3,
)
DEBERTA = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    max_position_embeddings=64,
    initializer_range=0.2,
    num_labels=3,
    pad_token_id=0,
    relative_attention=True,
    share_att_key=True,
)
# DeBERTa-v3's layout: no absolute positions, no token types, both position terms, log buckets, normalised table.
DEBERTA_V3 = dict(
    pos_att_type=["p2c", "c2p"],
    position_biased_input=False,
    position_buckets=8,
    max_relative_positions=64,
    norm_rel_ebd="layer_norm",
    type_vocab_size=0,
)
# DeBERTa-v2's base layout: absolute positions, token types, one position term, no buckets.
DEBERTA_V2 = dict(pos_att_type=["c2p"], position_biased_input=True, max_relative_positions=16, type_vocab_size=2)
# ModernBERT: a global layer then a local one (window 4: keys at distance <= 2), different θ, pad id 1 as the batch.
MODERNBERT = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    local_attention=4,
    global_rope_theta=160000.0,
    local_rope_theta=10.0,
    initializer_range=0.2,
    num_labels=3,
    pad_token_id=1,
    bos_token_id=2,
    eos_token_id=3,
    cls_token_id=2,
    sep_token_id=3,
)
# ... with every bias flag on and mean pooling.
MODERNBERT_BIASES = dict(
    norm_bias=True, mlp_bias=True, attention_bias=True, classifier_bias=True, classifier_pooling="mean"
)


def modernbert_config(attn_implementation: str = "eager", **overrides) -> transformers.PretrainedConfig:
    """A tiny ModernBERT config on the given attention path (eager is the reference; sdpa is checked too)."""
    config = transformers.ModernBertConfig(**{**MODERNBERT, **overrides})
    config._attn_implementation = attn_implementation
    return config


FAMILIES = {
    "distilbert": ("DistilBert", lambda: transformers.DistilBertConfig(**DISTILBERT)),
    "distilbert-sinusoidal": (
        "DistilBert",
        lambda: transformers.DistilBertConfig(**DISTILBERT, sinusoidal_pos_embds=True),
    ),
    "mpnet": ("MPNet", lambda: transformers.MPNetConfig(**MPNET)),
    "deberta-v3": ("DebertaV2", lambda: transformers.DebertaV2Config(**DEBERTA, **DEBERTA_V3)),
    "deberta-v2": ("DebertaV2", lambda: transformers.DebertaV2Config(**DEBERTA, **DEBERTA_V2)),
    "modernbert": ("ModernBert", modernbert_config),
    "modernbert-sdpa": ("ModernBert", lambda: modernbert_config("sdpa")),
    "modernbert-biases-mean": ("ModernBert", lambda: modernbert_config(**MODERNBERT_BIASES)),
}
HEADS = (
    "Model",
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
)


def make_source(family: str, head: str, seed: int = 0) -> transformers.PreTrainedModel:
    prefix, make_config = FAMILIES[family]
    config = make_config()
    if head == "ForQuestionAnswering":
        config.num_labels = 2
    torch.manual_seed(seed)
    model = getattr(transformers, prefix + head)(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "relative_attention_bias" in name:
                parameter.normal_(0.0, 1.0)  # MPNet's shared bias: large enough to matter
    return model


def padded_batch(length: int = 9) -> dict[str, torch.Tensor]:
    """Two sequences, the second padded with id 1 (MPNet's padding) under a zero mask."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 99, (2, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, length * 2 // 3 :] = 1
    attention_mask[1, length * 2 // 3 :] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
