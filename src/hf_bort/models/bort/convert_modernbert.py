"""
ModernBERT -> Bort: the config fields (rotary θ and attention window per layer, pre-LayerNorm, GeGLU, no biases,
the prediction head as the pooler) and the weights (fused Q/K/V and GeGLU input split into Bort's tensors).

Reads both ModernBERT configurations: transformers 5.x (`layer_types`, `rope_parameters` per layer type) and 4.x
(`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`).
"""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel

_GLOBAL, _LOCAL = "full_attention", "sliding_attention"


def _layer_types(source: PretrainedConfig) -> list[str]:
    layer_types = getattr(source, "layer_types", None)
    if layer_types is not None:
        return list(layer_types)
    every = getattr(source, "global_attn_every_n_layers", 3)  # transformers 4.x
    return [_LOCAL if index % every else _GLOBAL for index in range(source.num_hidden_layers)]


def _rope_thetas(source: PretrainedConfig) -> dict[str, float]:
    """θ of the global and the local layers; refuses RoPE scaling variants Bort does not implement."""
    parameters = getattr(source, "rope_parameters", None)
    if isinstance(parameters, dict) and _GLOBAL in parameters:  # transformers 5.x
        thetas = {}
        for layer_type in (_GLOBAL, _LOCAL):
            params = parameters.get(layer_type) or {}
            if params.get("rope_type", "default") != "default":
                raise ValueError(
                    f"Cannot convert this ModernBERT configuration to Bort: `rope_parameters[{layer_type!r}]` uses "
                    f"rope_type {params['rope_type']!r}; only the default rotary embedding is supported."
                )
            thetas[layer_type] = float(params["rope_theta"])
        return thetas
    if getattr(source, "rope_scaling", None):
        raise ValueError("Cannot convert this ModernBERT configuration to Bort: `rope_scaling` is not supported.")
    local = getattr(source, "local_rope_theta", None)
    return {_GLOBAL: float(source.global_rope_theta), _LOCAL: float(local or source.global_rope_theta)}


def modernbert_fields(source: PretrainedConfig) -> dict:
    """The Bort fields of a ModernBERT configuration (see the module docstring)."""
    if source.hidden_size % source.num_attention_heads:
        raise ValueError(
            f"Cannot convert this ModernBERT configuration to Bort: `num_attention_heads` "
            f"({source.num_attention_heads}) does not divide `hidden_size` ({source.hidden_size})."
        )
    layer_types = _layer_types(source)
    unknown = sorted(set(layer_types) - {_GLOBAL, _LOCAL})
    if unknown:
        raise ValueError(f"Cannot convert ModernBERT layer types {unknown}: expected {_GLOBAL!r} / {_LOCAL!r}.")
    thetas = _rope_thetas(source)
    return {
        "hidden_size": source.hidden_size,
        "num_hidden_layers": source.num_hidden_layers,
        "num_attention_heads": source.num_attention_heads,
        "intermediate_size": source.intermediate_size,
        "hidden_act": source.hidden_activation,
        # Dropout (all 0 in the released checkpoints): Bort has one residual and one attention probability.
        "hidden_dropout_prob": float(source.mlp_dropout),
        "attention_probs_dropout_prob": float(source.attention_dropout),
        "classifier_dropout": float(source.classifier_dropout),
        "layer_norm_eps": source.norm_eps,
        "type_vocab_size": 0,
        "position_embedding_type": "rotary",
        "rotary_theta": [thetas[layer_type] for layer_type in layer_types],
        "attention_window": [source.local_attention if t == _LOCAL else 0 for t in layer_types],
        "pre_layer_norm": True,
        "attention_layer_norm": [index > 0 for index in range(source.num_hidden_layers)],  # layer 0: identity
        "gated_ffn": True,
        "attention_bias": bool(source.attention_bias),
        "ffn_bias": bool(source.mlp_bias),
        "layer_norm_bias": bool(source.norm_bias),
        "head_bias": bool(source.classifier_bias),
        "pooler_hidden_act": source.classifier_activation,
        "pooler_layer_norm": True,
        "classifier_pooling": source.classifier_pooling,
        "token_head_transform": True,
        "pad_token_id": source.pad_token_id,
    }


def check_modernbert_head(model: PreTrainedModel, task: str) -> None:
    """Refuses the MLM head whose activation differs from the encoder's (Bort's MLM transform uses `hidden_act`)."""
    config = model.config
    if task == "fill-mask" and config.classifier_activation != config.hidden_activation:
        raise ValueError(
            f"Cannot convert this ModernBERT MLM head: its head applies `classifier_activation` "
            f"{config.classifier_activation!r} while `hidden_activation` is {config.hidden_activation!r}, and Bort's "
            "MLM transform uses `hidden_act`."
        )


def _split(tensor: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
    return tuple(part.clone() for part in tensor.chunk(parts, dim=0))


def modernbert_state_dict(model: PreTrainedModel, task: str) -> dict[str, torch.Tensor]:
    """ModernBERT's tensors under Bort's names, with Wqkv split into query/key/value and Wi into dense/gate."""
    check_modernbert_head(model, task)
    base_prefix = "" if task == "feature-extraction" else "bort."
    is_base = model is model.base_model
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if not is_base and not key.startswith(model.base_model_prefix + "."):
            out.update(_head_tensor(key, tensor, task))
            continue
        rest = key if is_base else key[len(model.base_model_prefix) + 1 :]
        parts = rest.split(".")
        if rest.startswith("embeddings.tok_embeddings."):
            out[base_prefix + "embeddings.word_embeddings." + parts[-1]] = tensor
        elif rest.startswith("embeddings.norm."):
            out[base_prefix + "embeddings.LayerNorm." + parts[-1]] = tensor
        elif rest.startswith("final_norm."):
            out[base_prefix + "encoder.final_layer_norm." + parts[-1]] = tensor
        elif rest.startswith("layers."):
            layer = f"{base_prefix}encoder.layer.{parts[1]}."
            name, kind = ".".join(parts[2:-1]), parts[-1]
            if name == "attn.Wqkv":
                for part, value in zip(("query", "key", "value"), _split(tensor, 3), strict=True):
                    out[f"{layer}attention.self.{part}.{kind}"] = value
            elif name == "mlp.Wi":
                for part, value in zip(("dense", "gate"), _split(tensor, 2), strict=True):
                    out[f"{layer}intermediate.{part}.{kind}"] = value
            else:
                target = {
                    "attn_norm": "attention.output.LayerNorm",
                    "attn.Wo": "attention.output.dense",
                    "mlp_norm": "output.LayerNorm",
                    "mlp.Wo": "output.dense",
                }.get(name)
                if target is None:
                    raise KeyError(f"Do not know where ModernBERT's {key!r} goes in Bort.")
                out[f"{layer}{target}.{kind}"] = tensor
        elif "inv_freq" not in rest:  # rotary buffers are recomputed from θ
            raise KeyError(f"Do not know where ModernBERT's {key!r} goes in Bort.")
    if task == "fill-mask" and "cls.predictions.bias" not in out:  # `decoder_bias=False`: a bias of zeros
        out["cls.predictions.bias"] = torch.zeros(model.config.vocab_size, dtype=next(model.parameters()).dtype)
    return out


def _head_tensor(key: str, tensor: torch.Tensor, task: str) -> dict[str, torch.Tensor]:
    if task == "fill-mask":
        names = {
            "head.dense.": "cls.predictions.transform.dense.",
            "head.norm.": "cls.predictions.transform.LayerNorm.",
            "decoder.weight": "cls.predictions.decoder.weight",
            "decoder.bias": "cls.predictions.bias",
        }
    else:
        names = {"head.dense.": "bort.pooler.dense.", "head.norm.": "bort.pooler.LayerNorm."}
        names["classifier."] = "qa_outputs." if task == "question-answering" else "classifier."
    for old, new in names.items():
        if key.startswith(old):
            return {new + key[len(old) :]: tensor}
    raise KeyError(f"Do not know where ModernBERT's {key!r} goes in Bort.")
