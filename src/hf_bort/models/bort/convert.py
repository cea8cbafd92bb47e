"""
Conversion of encoder checkpoints (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, MPNet, DeBERTa-v2/v3,
ModernBERT, amazon/bort) into
Bort models with equal outputs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from ..._outputs import (
    check_not_overlapping,
    check_output_dir,
    check_overwrite,
    clean_stale,
    make_workdir,
    replace_dir,
)
from ..._sources import check_source
from ..sentence_transformers_folder import read_layout, transformer_source
from .configuration_bort import BortConfig
from .modeling_bort import (
    BortForMaskedLM,
    BortForMultipleChoice,
    BortForQuestionAnswering,
    BortForSequenceClassification,
    BortForTokenClassification,
    BortModel,
    BortPreTrainedModel,
)

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
# Families whose MLM head (`lm_head`) applies GELU whatever `hidden_act` says; Bort's MLM transform uses `hidden_act`.
_LM_HEAD_GELU = (*ROBERTA_FAMILY, "mpnet")
# MPNet computes its relative-position buckets with these constants, whatever the size of its bias table.
MPNET_NUM_BUCKETS, MPNET_MAX_DISTANCE = 32, 128

TASK_TO_BORT_CLASS: dict[str, type[BortPreTrainedModel]] = {
    "feature-extraction": BortModel,
    "fill-mask": BortForMaskedLM,
    "text-classification": BortForSequenceClassification,
    "token-classification": BortForTokenClassification,
    "question-answering": BortForQuestionAnswering,
    "multiple-choice": BortForMultipleChoice,
}

# Source class name suffix -> task. Order matters: "Model" must come last.
_SUFFIX_TO_TASK = (
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForPreTraining", None),  # BERT: MLM head (NSP dropped); ELECTRA discriminator: encoder only
    ("Model", "feature-extraction"),
)

# Head parameters whose names differ from BERT's, per family and task: source prefix -> Bort prefix.
_ROBERTA_HEADS = {
    "fill-mask": {
        "lm_head.dense.": "cls.predictions.transform.dense.",
        "lm_head.layer_norm.": "cls.predictions.transform.LayerNorm.",
        "lm_head.decoder.weight": "cls.predictions.decoder.weight",
        "lm_head.decoder.bias": "cls.predictions.decoder.bias",
        "lm_head.bias": "cls.predictions.bias",
    },
    "text-classification": {"classifier.dense.": "bort.pooler.dense.", "classifier.out_proj.": "classifier."},
}
_HEAD_RENAMES = {
    "bert": {},
    **dict.fromkeys(ROBERTA_FAMILY, _ROBERTA_HEADS),
    "electra": {
        "fill-mask": {
            "generator_predictions.dense.": "cls.predictions.transform.dense.",
            "generator_predictions.LayerNorm.": "cls.predictions.transform.LayerNorm.",
            "generator_lm_head.weight": "cls.predictions.decoder.weight",
            "generator_lm_head.bias": "cls.predictions.bias",
        },
        "text-classification": {"classifier.dense.": "bort.pooler.dense.", "classifier.out_proj.": "classifier."},
    },
}
_HEAD_RENAMES["mpnet"] = _ROBERTA_HEADS
_DISTILBERT_CLASSIFIER = {"pre_classifier.": "bort.pooler.dense."}  # + ReLU: `pooler_hidden_act="relu"`
_HEAD_RENAMES["distilbert"] = {
    "fill-mask": {
        "vocab_transform.": "cls.predictions.transform.dense.",
        "vocab_layer_norm.": "cls.predictions.transform.LayerNorm.",
        "vocab_projector.weight": "cls.predictions.decoder.weight",
        "vocab_projector.bias": "cls.predictions.bias",
    },
    "text-classification": _DISTILBERT_CLASSIFIER,
    "multiple-choice": _DISTILBERT_CLASSIFIER,
}
# Encoder parameters whose names differ from BERT's (substring -> replacement, in the key without the base prefix).
_BODY_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "distilbert": (
        ("transformer.layer.", "encoder.layer."),
        (".attention.q_lin.", ".attention.self.query."),
        (".attention.k_lin.", ".attention.self.key."),
        (".attention.v_lin.", ".attention.self.value."),
        (".attention.out_lin.", ".attention.output.dense."),
        (".sa_layer_norm.", ".attention.output.LayerNorm."),
        (".ffn.lin1.", ".intermediate.dense."),
        (".ffn.lin2.", ".output.dense."),
        (".output_layer_norm.", ".output.LayerNorm."),
    ),
    "mpnet": (
        (".attention.attn.q.", ".attention.self.query."),
        (".attention.attn.k.", ".attention.self.key."),
        (".attention.attn.v.", ".attention.self.value."),
        (".attention.attn.o.", ".attention.output.dense."),
        (".attention.LayerNorm.", ".attention.output.LayerNorm."),
    ),
}
_BODY_RENAMES["deberta-v2"] = (
    (".attention.self.query_proj.", ".attention.self.query."),
    (".attention.self.key_proj.", ".attention.self.key."),
    (".attention.self.value_proj.", ".attention.self.value."),
)
_DEBERTA_POOLER = {"pooler.dense.": "bort.pooler.dense."}  # ContextPooler: dense + `pooler_hidden_act`
_HEAD_RENAMES["deberta-v2"] = {
    "fill-mask": {  # the non-legacy head (config.legacy=False); the legacy one already has BERT's names
        "lm_predictions.lm_head.dense.": "cls.predictions.transform.dense.",
        "lm_predictions.lm_head.LayerNorm.": "cls.predictions.transform.LayerNorm.",
        "lm_predictions.lm_head.bias": "cls.predictions.bias",
    },
    "text-classification": _DEBERTA_POOLER,
    "multiple-choice": _DEBERTA_POOLER,
}
_UNSUPPORTED_HEADS = {("electra", "multiple-choice"): "ELECTRA's multiple-choice head (SequenceSummary)"}


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


def _source_task(model: PreTrainedModel) -> str:
    name = type(model).__name__
    for suffix, task in _SUFFIX_TO_TASK:
        if name.endswith(suffix):
            if task is None:  # *ForPreTraining
                return "feature-extraction" if model.config.model_type == "electra" else "fill-mask"
            return task
    raise ValueError(
        f"Cannot tell the task of {name}: expected a base model or a *ForMaskedLM, *ForSequenceClassification, "
        "*ForTokenClassification, *ForQuestionAnswering, *ForMultipleChoice or *ForPreTraining class."
    )


def _renamed_state_dict(model: PreTrainedModel, task: str) -> dict[str, torch.Tensor]:
    model_type = model.config.model_type
    if model_type == "modernbert":
        from .convert_modernbert import modernbert_state_dict

        return modernbert_state_dict(model, task)
    prefix = model.base_model_prefix
    renames = {} if model_type == "bort" else _HEAD_RENAMES[model_type].get(task, {})
    body_renames = _BODY_RENAMES.get(model_type, ())
    is_base = model is model.base_model
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue  # buffers, not weights
        if is_base or key.startswith(prefix + "."):
            rest = key if is_base else key[len(prefix) + 1 :]
            for old, new in body_renames:
                rest = rest.replace(old, new)
            if model_type == "mpnet" and rest == "encoder.relative_attention_bias.weight":
                tensor = tensor[:MPNET_NUM_BUCKETS]  # rows past the 32 buckets MPNet computes are never read
            new_key = rest if task == "feature-extraction" else f"bort.{rest}"
        else:
            new_key = key
            for old, new in renames.items():
                if key.startswith(old):
                    new_key = new + key[len(old) :]
                    break
        out[new_key] = tensor
    return out


def load_source(path: str | os.PathLike, **kwargs) -> PreTrainedModel:
    """The source model, with the class its weights support (a head named in `architectures` but absent from the
    weights is not built; the pooler is built when it has weights): see [`source_model_class`]."""
    from ..source_class import load_source_model

    check_source(path, "source")  # a missing path or a file: say so, not "check your internet connection"
    path = transformer_source(path)  # a sentence-transformers folder may keep its encoder in a sub-folder
    config = AutoConfig.from_pretrained(path, **kwargs)
    _check_model_type(config.model_type)  # before any weight is read
    return load_source_model(path, config, **kwargs)


def convert_to_bort(
    model_or_path: PreTrainedModel | str | os.PathLike,
    save_directory: str | os.PathLike | None = None,
    *,
    tokenizer=None,
    overwrite: bool = False,
    **from_pretrained_kwargs,
) -> BortPreTrainedModel:
    """
    Converts an encoder of a supported family (an instance, a local path or a Hub id) into the matching Bort model,
    with outputs equal to the source's (float rounding aside). The task head is kept: `BertForMaskedLM` becomes
    [`BortForMaskedLM`], `RobertaForSequenceClassification` becomes [`BortForSequenceClassification`], and so on;
    `*ForPreTraining` keeps the MLM head (BERT) or only the encoder (ELECTRA discriminator).

    When `save_directory` is given, the Bort checkpoint is saved there with the tokenizer (`tokenizer`, or the one
    found beside the source path). A local sentence-transformers folder stays one: `modules.json`, the pooling,
    `Dense` and `Normalize` modules and `sentence_bert_config.json` are written around the Bort encoder, which goes
    where `modules.json` puts the transformer module; load it with `import hf_bort` then
    `SentenceTransformer(save_directory)`, or with `SentenceTransformer(save_directory, trust_remote_code=True)`.
    A non-empty existing `save_directory` is replaced only with `overwrite=True` (as every hf_bort writer).

    Example:

    ```python
    >>> import torch
    >>> from transformers import BertConfig, BertModel
    >>> from hf_bort import convert_to_bort
    >>> bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                             intermediate_size=37, vocab_size=99)).eval()
    >>> bort = convert_to_bort(bert).eval()
    >>> ids = torch.tensor([[2, 7, 9, 3]])
    >>> torch.allclose(bert(ids).last_hidden_state, bort(ids).last_hidden_state, atol=1e-5)
    True
    ```
    """
    if save_directory is not None:  # a file where the folder goes: fail before loading anything
        check_output_dir(save_directory, "save_directory")
        if isinstance(model_or_path, (str, os.PathLike)):
            check_not_overlapping(model_or_path, save_directory, "model_or_path", "save_directory")
        check_overwrite(save_directory, overwrite, "save_directory")
    source_path = None
    if isinstance(model_or_path, (str, os.PathLike)):
        source_path = model_or_path
        model = load_source(model_or_path, **from_pretrained_kwargs)
    elif isinstance(model_or_path, PreTrainedModel):
        model = model_or_path
        _check_model_type(model.config.model_type)
    else:
        raise TypeError(
            f"`model_or_path` must be a PreTrainedModel or a path / Hub id, got {type(model_or_path).__name__}."
        )
    model_type = model.config.model_type
    task = _source_task(model)
    if (model_type, task) in _UNSUPPORTED_HEADS:
        raise ValueError(f"Cannot convert {_UNSUPPORTED_HEADS[model_type, task]} to Bort.")
    if task == "fill-mask" and model_type in _LM_HEAD_GELU and model.config.hidden_act != "gelu":
        raise ValueError(
            f"Cannot convert this {model_type} MLM head: its `lm_head` applies GELU while `hidden_act` is "
            f"{model.config.hidden_act!r}, and Bort's MLM transform uses `hidden_act`."
        )

    base = model.base_model
    has_pooler = getattr(base, "pooler", None) is not None
    if model_type == "modernbert":  # the prediction head of the classifiers becomes the pooler
        has_pooler = task not in ("feature-extraction", "fill-mask")
    if model_type == "bort":
        config = BortConfig.from_dict(model.config.to_dict())
    else:
        config = bort_config_from(model.config, add_pooling_layer=has_pooler)
        if model_type == "distilbert" and task != "text-classification" and task != "multiple-choice":
            config.classifier_dropout = None  # DistilBERT's token classifier drops out with `dropout`
    bort_class = TASK_TO_BORT_CLASS[task]
    bort = bort_class(config)
    state_dict = _renamed_state_dict(model, task)
    result = bort.load_state_dict(state_dict, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [key for key in result.missing_keys if key not in tied]
    if missing:
        raise RuntimeError(f"Conversion of {type(model).__name__} left Bort weights unset: {missing}")
    if result.unexpected_keys:
        logger.warning(
            "Converting %s to %s dropped weights Bort has no place for: %s",
            type(model).__name__,
            bort_class.__name__,
            sorted(result.unexpected_keys),
        )
    if task == "fill-mask":
        bort.tie_weights()
    first = next(model.parameters())
    bort.to(dtype=first.dtype, device=first.device)
    bort.train(model.training)

    if save_directory is not None:
        save_converted(bort, save_directory, tokenizer, source_path, overwrite=overwrite, **from_pretrained_kwargs)
    return bort


def save_converted(
    bort: BortPreTrainedModel,
    save_directory: str | os.PathLike,
    tokenizer=None,
    source_path: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    max_abs_difference: float | None = None,
    overwrite: bool = False,
    **from_pretrained_kwargs,
) -> Path:
    """
    Save a converted model with its tokenizer (`tokenizer`, or the one beside `source_path`) and a `README.md` model
    card naming the source (`source`, default `source_path` or the model's `name_or_path`) and, when given, the
    measured `max_abs_difference` to it; return the folder. When `source_path` is a local sentence-transformers
    folder, its module layout is written around the model. A non-empty existing `save_directory` is refused unless
    `overwrite=True`; the folder is written beside it and moved in at the end (replacing the old one whole).
    """
    from ...cards import converted_card, write_card

    final_directory = check_output_dir(save_directory, "save_directory")
    check_overwrite(final_directory, overwrite, "save_directory")
    clean_stale(final_directory)
    workdir = make_workdir(final_directory)  # written beside the output, moved in whole at the end
    try:
        layout = read_layout(source_path)
        model_directory = workdir
        if layout is not None:
            layout.write(workdir, hidden_size=bort.config.hidden_size)
            model_directory = layout.transformer_output_dir(workdir)
        bort.save_pretrained(model_directory)
        if tokenizer is None and source_path is not None:
            tokenizer = load_tokenizer(transformer_source(source_path), **from_pretrained_kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(model_directory)
        else:
            logger.warning("No tokenizer saved beside the Bort checkpoint in %s: pass `tokenizer=`.", final_directory)
        source = source or source_path or getattr(bort, "name_or_path", None) or None
        card = converted_card(bort, source, max_abs_difference=max_abs_difference)
        card.model_name = final_directory.absolute().name or card.model_name  # not the work folder's name
        write_card(card, workdir)
        replace_dir(workdir, final_directory)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return final_directory


def load_tokenizer(path, **kwargs):
    """The tokenizer at `path`, or None (with a warning) when there is none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        logger.warning("Could not load a tokenizer from %s: %s", path, error)
        return None


@torch.no_grad()
def max_output_difference(source: PreTrainedModel, bort: PreTrainedModel, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between every floating output tensor of `source` and `bort` on `inputs`."""
    source_out, bort_out = source.eval()(**inputs), bort.eval()(**inputs)
    worst = 0.0
    for key, value in bort_out.items():
        other = source_out.get(key) if hasattr(source_out, "get") else None
        if isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor) and value.is_floating_point():
            worst = max(worst, (value - other).abs().max().item())
    return worst
