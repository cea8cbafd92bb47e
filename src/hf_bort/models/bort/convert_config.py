"""Which encoder families convert to Bort, and the [`BortConfig`] of a source's configuration (field names, token
types, positions, pooler and dropout of each family; DeBERTa's relative attention; ModernBERT's in
`convert_modernbert`)."""

from __future__ import annotations

import logging

from transformers import PretrainedConfig

from .configuration_bort import BortConfig

logger = logging.getLogger(__name__)


ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")


SUPPORTED_MODEL_TYPES = (
    "bert",
    *ROBERTA_FAMILY,
    "electra",
    "distilbert",
    "mpnet",
    "deberta-v2",
    "modernbert",
    "bort",
)


# MPNet computes its relative-position buckets with these constants, whatever the size of its bias table.
MPNET_NUM_BUCKETS, MPNET_MAX_DISTANCE = 32, 128


def unsupported_model_type_message(model_type: str | None) -> str:
    """The refusal of a model type Bort cannot represent, shared by every command that takes a source model."""
    return (
        f"Cannot convert a model of type {model_type!r} to Bort. Supported model types: "
        f"{', '.join(SUPPORTED_MODEL_TYPES)} (amazon/bort checkpoints are model_type 'bert')."
    )


def check_model_type(model_type: str | None) -> None:
    """Raise [`unsupported_model_type_message`] unless `model_type` converts to Bort."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(unsupported_model_type_message(model_type))


_check_model_type = check_model_type  # the name the package used before


def is_encoder_config(config: PretrainedConfig) -> bool:
    """True for a BERT-style encoder: a convertible type, or another masked-LM encoder (DistilBERT, ALBERT…); false
    for decoder-only (GPT-2…) and encoder-decoder (T5, BART…) models."""
    if getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES:
        return True
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def check_encoder_config(config: PretrainedConfig, what: str) -> None:
    """Refuse a decoder or encoder-decoder source up front with `convert`'s message (`what` names the command)."""
    if not is_encoder_config(config):
        raise ValueError(
            f"{what} needs a BERT-style encoder, and {getattr(config, 'model_type', None)!r} is a decoder or "
            f"encoder-decoder model. {unsupported_model_type_message(getattr(config, 'model_type', None))}"
        )


def bort_config_from(source: PretrainedConfig, add_pooling_layer: bool | None = None) -> BortConfig:
    """
    Translates the configuration of a supported encoder into the equivalent [`BortConfig`].

    Example:

    ```python
    >>> from transformers import RobertaConfig
    >>> from hf_bort import bort_config_from
    >>> bort_config_from(RobertaConfig()).position_embedding_type
    'roberta'
    ```
    """
    if isinstance(source, BortConfig):
        return BortConfig.from_dict(source.to_dict())
    model_type = getattr(source, "model_type", None)
    _check_model_type(model_type)
    position_type = getattr(source, "position_embedding_type", None) or "absolute"
    if position_type != "absolute":
        raise ValueError(
            f"`position_embedding_type` {position_type!r} of the source is not supported: Bort has absolute positions."
        )
    fields = _family_fields(source, model_type)
    if add_pooling_layer is None:
        add_pooling_layer = model_type not in ("electra", "distilbert", "deberta-v2", "modernbert")  # no pooler
    return BortConfig(
        **fields,
        vocab_size=source.vocab_size,
        max_position_embeddings=source.max_position_embeddings,
        initializer_range=source.initializer_range,
        add_pooling_layer=add_pooling_layer,
        bos_token_id=getattr(source, "bos_token_id", None),
        eos_token_id=getattr(source, "eos_token_id", None),
        id2label=dict(source.id2label),
        label2id=dict(source.label2id),
        problem_type=getattr(source, "problem_type", None),
    )


def _family_fields(source: PretrainedConfig, model_type: str) -> dict:
    """The Bort fields that differ between source families (names, token types, positions, pooler, dropout)."""
    if model_type == "distilbert":
        return {
            "hidden_size": source.dim,
            "num_hidden_layers": source.n_layers,
            "num_attention_heads": source.n_heads,
            "intermediate_size": source.hidden_dim,
            "hidden_act": source.activation,
            "hidden_dropout_prob": source.dropout,
            "attention_probs_dropout_prob": source.attention_dropout,
            "type_vocab_size": 0,
            "layer_norm_eps": 1e-12,  # fixed in DistilBERT's code
            "position_embedding_type": "absolute",  # sinusoidal tables are stored as weights: copied like learned ones
            "pooler_hidden_act": "relu",  # the classifiers' pre_classifier + ReLU
            "classifier_dropout": source.seq_classif_dropout,
            "pad_token_id": source.pad_token_id,
        }
    if model_type == "deberta-v2":
        return _deberta_fields(source)
    if model_type == "modernbert":
        from .convert_modernbert import modernbert_fields

        return modernbert_fields(source)
    fields = {
        "hidden_size": source.hidden_size,
        "num_hidden_layers": source.num_hidden_layers,
        "num_attention_heads": source.num_attention_heads,
        "intermediate_size": source.intermediate_size,
        "hidden_act": source.hidden_act,
        "hidden_dropout_prob": source.hidden_dropout_prob,
        "attention_probs_dropout_prob": source.attention_probs_dropout_prob,
        "layer_norm_eps": source.layer_norm_eps,
        "classifier_dropout": getattr(source, "classifier_dropout", None),
        "pad_token_id": getattr(source, "pad_token_id", None),
    }
    if model_type == "mpnet":
        if source.relative_attention_num_buckets < MPNET_NUM_BUCKETS:
            raise ValueError(
                f"MPNet computes {MPNET_NUM_BUCKETS} relative-position buckets, but this config's table has only "
                f"`relative_attention_num_buckets`={source.relative_attention_num_buckets} rows (MPNet itself cannot "
                "run it)."
            )
        if source.pad_token_id != 1:
            logger.warning(
                "MPNet pads with id 1 whatever `pad_token_id` (%s) says; the Bort model uses 1 as MPNet does.",
                source.pad_token_id,
            )
        return {
            **fields,
            "type_vocab_size": 0,
            "position_embedding_type": "roberta",  # positions count from padding_idx + 1, as RoBERTa's
            "relative_attention_num_buckets": MPNET_NUM_BUCKETS,
            "relative_attention_max_distance": MPNET_MAX_DISTANCE,
            "pad_token_id": 1,
        }
    is_electra = model_type == "electra"
    embedding_size = getattr(source, "embedding_size", None) if is_electra else None
    return {
        **fields,
        "type_vocab_size": source.type_vocab_size,
        "position_embedding_type": "roberta" if model_type in ROBERTA_FAMILY else "absolute",
        "embedding_size": embedding_size if embedding_size != source.hidden_size else None,
        "pooler_hidden_act": "gelu" if is_electra else "tanh",
    }


def _deberta_fields(source: PretrainedConfig) -> dict:
    """DeBERTa-v2/v3: disentangled relative attention, optional absolute positions, padding masked as DeBERTa does."""
    relative = bool(getattr(source, "relative_attention", False))
    pos_att_type = list(getattr(source, "pos_att_type", None) or [])
    problems = []
    if pos_att_type and not relative:
        problems.append("`pos_att_type` without `relative_attention` (scales the scores but adds no position term)")
    if relative and pos_att_type and not getattr(source, "share_att_key", False):
        problems.append("`share_att_key=False` (separate position projections)")
    if getattr(source, "conv_kernel_size", 0) > 0:
        problems.append("`conv_kernel_size` > 0 (the convolution of DeBERTa-v2-xlarge/xxlarge)")
    if getattr(source, "embedding_size", source.hidden_size) != source.hidden_size:
        problems.append("`embedding_size` != `hidden_size` (DeBERTa projects before its embedding LayerNorm)")
    if getattr(source, "pooler_hidden_size", source.hidden_size) != source.hidden_size:
        problems.append("`pooler_hidden_size` != `hidden_size`")
    if problems:
        raise ValueError(f"Cannot convert this DeBERTa-v2 configuration to Bort: {'; '.join(problems)}.")
    max_relative = getattr(source, "max_relative_positions", -1)
    if max_relative < 1:
        max_relative = source.max_position_embeddings
    norm_rel_ebd = [part.strip() for part in str(getattr(source, "norm_rel_ebd", "none")).lower().split("|")]
    fields = {
        "hidden_size": source.hidden_size,
        "num_hidden_layers": source.num_hidden_layers,
        "num_attention_heads": source.num_attention_heads,
        "intermediate_size": source.intermediate_size,
        "hidden_act": source.hidden_act,
        "hidden_dropout_prob": source.hidden_dropout_prob,
        "attention_probs_dropout_prob": source.attention_probs_dropout_prob,
        "layer_norm_eps": source.layer_norm_eps,
        "type_vocab_size": source.type_vocab_size,
        "position_embedding_type": "absolute" if getattr(source, "position_biased_input", True) else "none",
        "mask_padded_tokens": True,
        "pooler_hidden_act": source.pooler_hidden_act,
        "classifier_dropout": getattr(source, "cls_dropout", None),
        "pad_token_id": getattr(source, "pad_token_id", None),
    }
    if getattr(source, "attention_head_size", None):
        fields["attention_head_size"] = source.attention_head_size
    if relative and pos_att_type:
        fields.update(
            pos_att_type=pos_att_type,
            position_buckets=max(0, getattr(source, "position_buckets", -1)),
            max_relative_positions=max_relative,
            relative_embeddings_layer_norm="layer_norm" in norm_rel_ebd,
        )
    return fields
