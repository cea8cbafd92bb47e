"""Conversion of BERT-family checkpoints (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, amazon/bort) into Bort models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from ..._outputs import check_not_overlapping, check_output_dir
from ..._sources import check_source
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
SUPPORTED_MODEL_TYPES = ("bert", *ROBERTA_FAMILY, "electra", "bort")

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
    is_electra = model_type == "electra"
    embedding_size = getattr(source, "embedding_size", None) if is_electra else None
    if add_pooling_layer is None:
        add_pooling_layer = not is_electra  # ElectraModel has no pooler
    return BortConfig(
        vocab_size=source.vocab_size,
        hidden_size=source.hidden_size,
        num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=source.num_attention_heads,
        intermediate_size=source.intermediate_size,
        hidden_act=source.hidden_act,
        hidden_dropout_prob=source.hidden_dropout_prob,
        attention_probs_dropout_prob=source.attention_probs_dropout_prob,
        max_position_embeddings=source.max_position_embeddings,
        type_vocab_size=source.type_vocab_size,
        initializer_range=source.initializer_range,
        layer_norm_eps=source.layer_norm_eps,
        position_embedding_type="roberta" if model_type in ROBERTA_FAMILY else "absolute",
        embedding_size=embedding_size if embedding_size != source.hidden_size else None,
        add_pooling_layer=add_pooling_layer,
        pooler_hidden_act="gelu" if is_electra else "tanh",
        classifier_dropout=getattr(source, "classifier_dropout", None),
        pad_token_id=getattr(source, "pad_token_id", None),
        bos_token_id=getattr(source, "bos_token_id", None),
        eos_token_id=getattr(source, "eos_token_id", None),
        id2label=dict(source.id2label),
        label2id=dict(source.label2id),
        problem_type=getattr(source, "problem_type", None),
    )


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
    prefix = model.base_model_prefix
    renames = {} if model_type == "bort" else _HEAD_RENAMES[model_type].get(task, {})
    is_base = model is model.base_model
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue  # buffers, not weights
        if is_base:
            new_key = key if task == "feature-extraction" else f"bort.{key}"
        elif key.startswith(prefix + "."):
            rest = key[len(prefix) + 1 :]
            new_key = rest if task == "feature-extraction" else f"bort.{rest}"
        else:
            new_key = key
            for old, new in renames.items():
                if key.startswith(old):
                    new_key = new + key[len(old) :]
                    break
        out[new_key] = tensor
    return out


def _load_source(path: str | os.PathLike, **kwargs) -> PreTrainedModel:
    import transformers

    check_source(path, "source")  # a missing path or a file: say so, not "check your internet connection"
    config = AutoConfig.from_pretrained(path, **kwargs)
    _check_model_type(config.model_type)  # before any weight is read
    architecture = (getattr(config, "architectures", None) or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    if model_class is None:
        model_class = transformers.AutoModel
    return model_class.from_pretrained(path, **kwargs)


def convert_to_bort(
    model_or_path: PreTrainedModel | str | os.PathLike,
    save_directory: str | os.PathLike | None = None,
    *,
    tokenizer=None,
    **from_pretrained_kwargs,
) -> BortPreTrainedModel:
    """
    Converts a BERT-family model (an instance, a local path or a Hub id) into the matching Bort model, with outputs
    equal to the source's (float rounding aside). The task head is kept: `BertForMaskedLM` becomes
    [`BortForMaskedLM`], `RobertaForSequenceClassification` becomes [`BortForSequenceClassification`], and so on;
    `*ForPreTraining` keeps the MLM head (BERT) or only the encoder (ELECTRA discriminator).

    When `save_directory` is given, the Bort checkpoint is saved there with the tokenizer (`tokenizer`, or the one
    found beside the source path).

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
    source_path = None
    if isinstance(model_or_path, (str, os.PathLike)):
        source_path = model_or_path
        model = _load_source(model_or_path, **from_pretrained_kwargs)
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

    base = model.base_model
    has_pooler = getattr(base, "pooler", None) is not None
    if model_type == "bort":
        config = BortConfig.from_dict(model.config.to_dict())
    else:
        config = bort_config_from(model.config, add_pooling_layer=has_pooler)
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
        save_converted(bort, save_directory, tokenizer, source_path, **from_pretrained_kwargs)
    return bort


def save_converted(
    bort: BortPreTrainedModel,
    save_directory: str | os.PathLike,
    tokenizer=None,
    source_path: str | os.PathLike | None = None,
    **from_pretrained_kwargs,
) -> Path:
    """Save a converted model with its tokenizer (`tokenizer`, or the one beside `source_path`); return the folder."""
    save_directory = check_output_dir(save_directory, "save_directory")
    bort.save_pretrained(save_directory)
    if tokenizer is None and source_path is not None:
        tokenizer = _load_tokenizer(source_path, **from_pretrained_kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(save_directory)
    else:
        logger.warning("No tokenizer saved beside the Bort checkpoint in %s: pass `tokenizer=`.", save_directory)
    return save_directory


def _load_tokenizer(path, **kwargs):
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
