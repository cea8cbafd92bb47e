# Copied into every saved Bort checkpoint with `configuration_bort.py` (which imports it), so that plain transformers
# can load it with ``trust_remote_code=True``: it must import nothing but the standard library and transformers.
"""The checks of `BortConfig`'s fields: the values each may take (position embeddings, pooling, DeBERTa's terms),
the size bounds, and one function per kind of field, each raising a ValueError that names the field."""

from __future__ import annotations

import math
from typing import Any

POSITION_EMBEDDING_TYPES = ("absolute", "roberta", "none", "rotary")


CLASSIFIER_POOLINGS = ("cls", "mean")


DISENTANGLED_TERMS = ("c2p", "p2c")


# Upper bounds of the size fields, so that a typo fails here instead of allocating (or overflowing) when the model is
# built. Every size (vocabulary, widths, heads, positions, token types) is at most 2**24 = 16,777,216; real encoders
# stay far below (the largest vocabularies hold about 256k tokens, the widest layers about 16k units). Depth is at most
# 1,024 layers (BERT-large has 24).
MAX_SIZE = 2**24


MAX_NUM_HIDDEN_LAYERS = 1024


def _check_positive_int(name: str, value: Any, maximum: int = MAX_SIZE) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    if value > maximum:
        raise ValueError(f"`{name}` must be at most {maximum:,}, got {value!r}.")


def _check_float(name: str, value: Any, low: float, high: float | None = None, *, low_inclusive: bool = True) -> None:
    """A finite real number (int or float, not bool or str) in [low, high] (or (low, high] without low_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    above = value >= low if low_inclusive else value > low
    if not above or (high is not None and value > high):
        opening = "[" if low_inclusive else "("
        bounds = f"{opening}{low:g}, {high:g}]" if high is not None else f"{opening}{low:g}, inf)"
        raise ValueError(f"`{name}` must be in {bounds}, got {value!r}.")


def _check_activation(name: str, value: Any) -> None:
    """An activation name transformers knows (`transformers.activations.ACT2FN`), the only kind the model builds."""
    try:
        from transformers.activations import ACT2FN
    except ImportError:  # pragma: no cover - transformers without torch: nothing to build, nothing to check
        return
    if not isinstance(value, str) or value not in ACT2FN:
        raise ValueError(
            f"`{name}` must be one of transformers' activations ({', '.join(sorted(ACT2FN))}), got {value!r}."
        )


def _per_layer(name: str, value: Any, num_layers: int) -> list[int]:
    """Expands an int or per-layer list to one positive int per layer, raising a ValueError naming the field."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_layers:
            raise ValueError(
                f"`{name}` has {len(value)} entries but `num_hidden_layers` is {num_layers}: a per-layer list needs "
                "exactly one entry per layer."
            )
        for index, item in enumerate(value):
            _check_positive_int(f"{name}[{index}]", item)
        return [int(item) for item in value]
    _check_positive_int(name, value)
    return [int(value)] * num_layers


def _per_layer_values(name: str, value: Any, num_layers: int, kind: type, check) -> list:
    """Expands one value or a per-layer list to one value per layer, checking each with `check(value) -> bool`."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_layers
    if len(values) != num_layers:
        raise ValueError(
            f"`{name}` has {len(values)} entries but `num_hidden_layers` is {num_layers}: a per-layer list needs "
            "exactly one entry per layer."
        )
    for index, item in enumerate(values):
        if isinstance(item, bool) != (kind is bool) or not isinstance(item, (int, float) if kind is float else kind):
            raise ValueError(f"`{name}[{index}]` must be a {kind.__name__}, got {item!r}.")
        if not check(item):
            raise ValueError(f"`{name}[{index}]` is out of range, got {item!r}.")
    return [kind(item) for item in values]


def _check_modern_fields(config_fields: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """Validates ModernBERT's fields (rotary θ, windows, pre-LayerNorm, gated FFN, biases, pooling)."""
    out = {
        "rotary_theta": _per_layer_values(
            "rotary_theta", config_fields["rotary_theta"], num_layers, float, lambda v: math.isfinite(v) and v > 1
        ),
        "attention_window": _per_layer_values(
            "attention_window", config_fields["attention_window"], num_layers, int, lambda v: 0 <= v <= MAX_SIZE
        ),
        "attention_layer_norm": _per_layer_values(
            "attention_layer_norm", config_fields["attention_layer_norm"], num_layers, bool, lambda v: True
        ),
    }
    for name in (
        "pre_layer_norm",
        "gated_ffn",
        "attention_bias",
        "ffn_bias",
        "layer_norm_bias",
        "head_bias",
        "pooler_layer_norm",
        "token_head_transform",
    ):
        if not isinstance(config_fields[name], bool):
            raise ValueError(f"`{name}` must be a bool, got {config_fields[name]!r}.")
    if not config_fields["pre_layer_norm"] and not all(out["attention_layer_norm"]):
        raise ValueError("`attention_layer_norm` may be False only with `pre_layer_norm=True` (ModernBERT's layer 0).")
    if config_fields["classifier_pooling"] not in CLASSIFIER_POOLINGS:
        raise ValueError(
            f"`classifier_pooling` must be one of {CLASSIFIER_POOLINGS}, got {config_fields['classifier_pooling']!r}."
        )
    return out


def _check_relative_attention(
    num_buckets: Any, max_distance: Any, head_index: Any, heads: list[int]
) -> list[list[int]] | None:
    """Validates MPNet's relative-bias fields; returns the head index as plain lists (or None)."""
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 0:
        raise ValueError(
            f"`relative_attention_num_buckets` must be an integer >= 0 (0 = no relative bias), got {num_buckets!r}."
        )
    if num_buckets > MAX_SIZE:
        raise ValueError(f"`relative_attention_num_buckets` must be at most {MAX_SIZE:,}, got {num_buckets!r}.")
    if num_buckets and num_buckets < 4:
        raise ValueError(
            f"`relative_attention_num_buckets` must be 0 or at least 4 (two directions, exact and logarithmic "
            f"buckets), got {num_buckets!r}."
        )
    _check_positive_int("relative_attention_max_distance", max_distance)
    if num_buckets and max_distance <= num_buckets // 4:
        raise ValueError(
            f"`relative_attention_max_distance` ({max_distance}) must exceed the exact-bucket range "
            f"`relative_attention_num_buckets // 4` ({num_buckets // 4})."
        )
    if head_index is None:
        return None
    if not num_buckets:
        raise ValueError(
            "`relative_attention_head_index` is only meaningful with a relative bias "
            "(`relative_attention_num_buckets` > 0)."
        )
    if not isinstance(head_index, (list, tuple)) or len(head_index) != len(heads):
        raise ValueError(
            f"`relative_attention_head_index` must hold one list per layer ({len(heads)}), got {head_index!r}."
        )
    out = []
    for layer, (index, count) in enumerate(zip(head_index, heads, strict=True)):
        if not isinstance(index, (list, tuple)) or len(index) != count:
            raise ValueError(
                f"`relative_attention_head_index[{layer}]` must list one table column per head ({count}), "
                f"got {index!r}."
            )
        for position, column in enumerate(index):
            if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < MAX_SIZE:
                raise ValueError(
                    f"`relative_attention_head_index[{layer}][{position}]` must be a column index >= 0, "
                    f"got {column!r}."
                )
        out.append([int(column) for column in index])
    return out


def _check_disentangled(pos_att_type: Any, position_buckets: Any, max_relative_positions: Any) -> list[str] | None:
    """Validates DeBERTa's disentangled-attention fields; returns the terms as a list (or None)."""
    for name, value in (("position_buckets", position_buckets), ("max_relative_positions", max_relative_positions)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
            raise ValueError(f"`{name}` must be an integer in [0, {MAX_SIZE:,}] (0 = unset), got {value!r}.")
    if not pos_att_type:
        return None
    if not isinstance(pos_att_type, (list, tuple)) or not set(pos_att_type) <= set(DISENTANGLED_TERMS):
        raise ValueError(f"`pos_att_type` must be a list of terms from {DISENTANGLED_TERMS}, got {pos_att_type!r}.")
    if max_relative_positions < 1:
        raise ValueError("`max_relative_positions` must be > 0 with `pos_att_type` (DeBERTa's relative attention).")
    if position_buckets == 1:
        raise ValueError("`position_buckets` must be 0 (no buckets) or at least 2.")
    return [term for term in DISENTANGLED_TERMS if term in pos_att_type]
