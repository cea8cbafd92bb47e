"""
Conversion of encoder checkpoints (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, MPNet, DeBERTa-v2/v3,
ModernBERT, amazon/bort) into
Bort models with equal outputs.

The supported families and the config translation live in `convert_config`, the weight renames in `convert_weights`;
their names stay importable from here.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, PreTrainedModel

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
from .convert_config import (  # noqa: F401  (re-exported: their home before the split)
    MPNET_MAX_DISTANCE,
    MPNET_NUM_BUCKETS,
    ROBERTA_FAMILY,
    SUPPORTED_MODEL_TYPES,
    _check_model_type,
    _deberta_fields,
    _family_fields,
    bort_config_from,
    check_encoder_config,
    check_model_type,
    is_encoder_config,
    unsupported_model_type_message,
)
from .convert_weights import (  # noqa: F401  (re-exported: their home before the split)
    _BODY_RENAMES,
    _DEBERTA_POOLER,
    _DISTILBERT_CLASSIFIER,
    _HEAD_RENAMES,
    _ROBERTA_HEADS,
    _SUFFIX_TO_TASK,
    _renamed_state_dict,
    _source_task,
)
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


# Families whose MLM head (`lm_head`) applies GELU whatever `hidden_act` says; Bort's MLM transform uses `hidden_act`.
_LM_HEAD_GELU = (*ROBERTA_FAMILY, "mpnet")


TASK_TO_BORT_CLASS: dict[str, type[BortPreTrainedModel]] = {
    "feature-extraction": BortModel,
    "fill-mask": BortForMaskedLM,
    "text-classification": BortForSequenceClassification,
    "token-classification": BortForTokenClassification,
    "question-answering": BortForQuestionAnswering,
    "multiple-choice": BortForMultipleChoice,
}


_UNSUPPORTED_HEADS = {("electra", "multiple-choice"): "ELECTRA's multiple-choice head (SequenceSummary)"}


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
