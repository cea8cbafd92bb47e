"""A source's weights under Bort's (BERT's) parameter names: the task its class implies, and the renames of each
family's encoder and head parameters (ModernBERT's in `convert_modernbert`)."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from .convert_config import MPNET_NUM_BUCKETS, ROBERTA_FAMILY

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
