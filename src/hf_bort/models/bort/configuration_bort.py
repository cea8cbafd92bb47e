# This file is copied into every saved Bort checkpoint (``auto_map``) so that plain transformers can load it with
# ``trust_remote_code=True``: it must import nothing but the standard library, transformers and the
# ``.configuration_bort_checks`` module beside it (which travels with it).
"""Bort model configuration: `BortConfig` and the Bort presets. The field checks live in `configuration_bort_checks`
and stay importable from here."""

from __future__ import annotations

from typing import Any

from .configuration_bort_checks import (  # noqa: F401  (re-exported: their home before the split)
    CLASSIFIER_POOLINGS,
    DISENTANGLED_TERMS,
    MAX_NUM_HIDDEN_LAYERS,
    MAX_SIZE,
    POSITION_EMBEDDING_TYPES,
    _check_activation,
    _check_disentangled,
    _check_float,
    _check_modern_fields,
    _check_positive_int,
    _check_relative_attention,
    _per_layer,
    _per_layer_values,
)

try:  # transformers >= 5 renamed the class and keeps the old name as an alias
    from transformers import PreTrainedConfig as _BaseConfig
except ImportError:  # pragma: no cover - transformers 4.x
    from transformers import PretrainedConfig as _BaseConfig


# Two readings of "Bort". See ``BortConfig.from_preset`` for why they differ. Both follow the released checkpoint as
# transformers' conversion script wrote it: 512 positions counted from 0, one (all-zero) token type, eps 1e-5, pad 1.
_BORT_COMMON: dict[str, Any] = {
    "vocab_size": 50265,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "max_position_embeddings": 512,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "add_pooling_layer": True,
}
BORT_PRESETS: dict[str, dict[str, Any]] = {
    # The released amazon/bort checkpoint: width 1024, FFN 768.
    "bort": {**_BORT_COMMON, "hidden_size": 1024, "intermediate_size": 768},
    # The shape whose sizes match the paper's table (56M total / 39M embeddings): width 768, FFN 1024.
    "bort-paper": {**_BORT_COMMON, "hidden_size": 768, "intermediate_size": 1024},
}


class BortConfig(_BaseConfig):
    r"""
    Configuration of a Bort encoder: BERT's architecture with per-layer shapes, so that sub-networks extracted from
    any BERT-family encoder (fewer layers, heads, hidden units or FFN neurons) are first-class models.

    Args:
        vocab_size (`int`, defaults to 50265): size of the token vocabulary.
        hidden_size (`int`, defaults to 1024): width H of the residual stream.
        num_hidden_layers (`int`, defaults to 4): depth D.
        num_attention_heads (`int` or `list[int]`, defaults to 8): heads A, for every layer or one entry per layer.
        attention_head_size (`int`, *optional*): width of one head. Defaults to `hidden_size // num_attention_heads`,
            which must then divide exactly; set it explicitly when heads were removed without changing the width.
        intermediate_size (`int` or `list[int]`, defaults to 768): FFN width I, for every layer or per layer.
        hidden_act (`str`, defaults to `"gelu"`): FFN and MLM-transform activation.
        hidden_dropout_prob (`float`, defaults to 0.1), attention_probs_dropout_prob (`float`, defaults to 0.1).
        max_position_embeddings (`int`, defaults to 514): rows of the position table.
        type_vocab_size (`int`, defaults to 1): token types; `0` means no token-type embedding at all.
        initializer_range (`float`, defaults to 0.02), layer_norm_eps (`float`, defaults to 1e-12): finite numbers,
            `initializer_range >= 0` and `0 < layer_norm_eps <= 1`.
        position_embedding_type (`str`, defaults to `"absolute"`): `"absolute"` counts positions from 0 (BERT,
            amazon/bort); `"roberta"` counts non-padding tokens from `pad_token_id + 1` (RoBERTa, XLM-R, CamemBERT).
        embedding_size (`int`, *optional*): width of the embeddings when it differs from `hidden_size` (ELECTRA); a
            linear `embeddings_project` then maps it to the hidden width.
        add_pooling_layer (`bool`, defaults to `True`): whether `BortModel` has BERT's pooler.
        pooler_hidden_act (`str`, defaults to `"tanh"`): the pooler's activation (`"gelu"` for converted ELECTRA
            classifiers).
        classifier_dropout (`float`, *optional*): dropout before task heads; defaults to `hidden_dropout_prob`.
        relative_attention_num_buckets (`int`, defaults to 0): `0` means no relative position bias (BERT). A positive
            value adds MPNet's bucketed relative position bias to every layer's attention scores: one table
            `encoder.relative_attention_bias` of `relative_attention_num_buckets` rows, shared by all layers.
        relative_attention_max_distance (`int`, defaults to 128): distance beyond which relative positions share the
            last (logarithmic) bucket.
        relative_attention_head_index (`list[list[int]]`, *optional*): for each layer, the column of the shared
            bias table that each of its heads reads. Unset, layer `l` reads columns `0 … heads(l) - 1`; extraction
            sets it when layers keep different heads, so that the kept heads still share one table exactly.
        pos_att_type (`list[str]`, *optional*): DeBERTa's disentangled attention terms, a subset of `["c2p", "p2c"]`
            (content-to-position, position-to-content). Each layer projects the shared relative embeddings
            `encoder.rel_embeddings` with its own query / key weights (DeBERTa's `share_att_key`), and the scores are
            scaled by `1 / sqrt(attention_head_size * (1 + len(pos_att_type)))`.
        position_buckets (`int`, defaults to 0): DeBERTa's log-bucketed relative positions (`0` = unbucketed); the
            relative table has `2 * position_buckets` rows (or `2 * max_relative_positions` without buckets).
        max_relative_positions (`int`, defaults to 0): DeBERTa's largest relative distance (required, > 0, with
            `pos_att_type`).
        relative_embeddings_layer_norm (`bool`, defaults to `False`): LayerNorm `encoder.LayerNorm` on the relative
            embeddings (DeBERTa's `norm_rel_ebd="layer_norm"`).
        mask_padded_tokens (`bool`, defaults to `False`): DeBERTa's masking: padded tokens' embeddings are zeroed
            and padded query rows are masked as well as padded keys.
        rotary_theta (`float` or `list[float]`, defaults to 10000.0): with `position_embedding_type="rotary"`
            (ModernBERT: no position table), the base θ of the rotary position embedding of every layer, or one per
            layer (ModernBERT's `global_rope_theta` on global layers, `local_rope_theta` on local ones).
        attention_window (`int` or `list[int]`, defaults to 0): `0` is global attention; `w > 0` is ModernBERT's
            local attention: a token sees only the keys at distance at most `w // 2`. Per layer, so that a layer
            kept by extraction keeps its type.
        pre_layer_norm (`bool`, defaults to `False`): ModernBERT's pre-LayerNorm layers: `attention.output.LayerNorm`
            normalises the attention's input and `output.LayerNorm` the FFN's input (residuals are added after), and
            `encoder.final_layer_norm` normalises the last layer's output.
        attention_layer_norm (`bool` or `list[bool]`, defaults to `True`): per layer, whether the pre-LayerNorm
            attention norm exists (`False`: the identity, as in ModernBERT's first layer).
        gated_ffn (`bool`, defaults to `False`): GLU feed-forward (ModernBERT's GeGLU): `intermediate.dense` and
            `intermediate.gate` each map to `intermediate_size`, and the FFN computes `act(dense(x)) * gate(x)`.
        attention_bias, ffn_bias, layer_norm_bias, head_bias (`bool`, default to `True`): whether the Q/K/V/output
            projections, the FFN, the LayerNorms, and the pooler / MLM-transform dense layers have biases.
        classifier_pooling (`str`, defaults to `"cls"`): what the pooler reads: the first token (`"cls"`) or the
            mean over non-padding tokens (`"mean"`, ModernBERT's option).
        pooler_layer_norm (`bool`, defaults to `False`): a LayerNorm `pooler.LayerNorm` after the pooler's
            activation (ModernBERT's prediction head).
        token_head_transform (`bool`, defaults to `False`): token classification and question answering apply the
            pooler's transform (dense, activation, LayerNorm) to every token before the classifier (ModernBERT).
        pad_token_id (`int`, *optional*, defaults to 1): `None` or a token id in `[0, vocab_size)`.

    Every field is checked here and a bad value raises a `ValueError` naming it: sizes are positive integers of at
    most `MAX_SIZE` (2**24) and depth at most `MAX_NUM_HIDDEN_LAYERS` (1024); probabilities are numbers in [0, 1];
    `hidden_act` and `pooler_hidden_act` are names in `transformers.activations.ACT2FN`.

    Example:

    ```python
    >>> from hf_bort import BortConfig
    >>> config = BortConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=[4, 2], attention_head_size=16,
    ...                     intermediate_size=[128, 32], vocab_size=100)
    >>> config.layer_num_attention_heads, config.layer_intermediate_sizes
    ([4, 2], [128, 32])
    ```
    """

    model_type = "bort"

    def __init__(
        self,
        vocab_size: int = 50265,
        hidden_size: int = 1024,
        num_hidden_layers: int = 4,
        num_attention_heads: int | list[int] = 8,
        attention_head_size: int | None = None,
        intermediate_size: int | list[int] = 768,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 514,
        type_vocab_size: int = 1,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        position_embedding_type: str = "absolute",
        embedding_size: int | None = None,
        add_pooling_layer: bool = True,
        pooler_hidden_act: str = "tanh",
        classifier_dropout: float | None = None,
        relative_attention_num_buckets: int = 0,
        relative_attention_max_distance: int = 128,
        relative_attention_head_index: list[list[int]] | None = None,
        pos_att_type: list[str] | None = None,
        position_buckets: int = 0,
        max_relative_positions: int = 0,
        relative_embeddings_layer_norm: bool = False,
        mask_padded_tokens: bool = False,
        rotary_theta: float | list[float] = 10000.0,
        attention_window: int | list[int] = 0,
        pre_layer_norm: bool = False,
        attention_layer_norm: bool | list[bool] = True,
        gated_ffn: bool = False,
        attention_bias: bool = True,
        ffn_bias: bool = True,
        layer_norm_bias: bool = True,
        head_bias: bool = True,
        classifier_pooling: str = "cls",
        pooler_layer_norm: bool = False,
        token_head_transform: bool = False,
        pad_token_id: int | None = 1,
        bos_token_id: int | None = 0,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)

        for name, value in (
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("max_position_embeddings", max_position_embeddings),
        ):
            _check_positive_int(name, value)
        _check_positive_int("num_hidden_layers", num_hidden_layers, MAX_NUM_HIDDEN_LAYERS)
        if isinstance(type_vocab_size, bool) or not isinstance(type_vocab_size, int) or type_vocab_size < 0:
            raise ValueError(
                f"`type_vocab_size` must be an integer >= 0 (0 = no token types), got {type_vocab_size!r}."
            )
        if type_vocab_size > MAX_SIZE:
            raise ValueError(f"`type_vocab_size` must be at most {MAX_SIZE:,}, got {type_vocab_size!r}.")
        if pad_token_id is not None and (
            isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int) or not 0 <= pad_token_id < vocab_size
        ):
            raise ValueError(
                f"`pad_token_id` must be None or a token id in [0, vocab_size={vocab_size}), got {pad_token_id!r} "
                "(a negative id would silently pick a row from the end of the embedding table)."
            )
        heads = _per_layer("num_attention_heads", num_attention_heads, num_hidden_layers)
        _per_layer("intermediate_size", intermediate_size, num_hidden_layers)
        if attention_head_size is None:
            if len(set(heads)) > 1:
                raise ValueError(
                    "`attention_head_size` must be set when `num_attention_heads` differs between layers "
                    f"(got {heads})."
                )
            if hidden_size % heads[0] != 0:
                raise ValueError(
                    f"`num_attention_heads` ({heads[0]}) does not divide `hidden_size` ({hidden_size}); set "
                    "`attention_head_size` explicitly to use heads that do not split the width evenly."
                )
            attention_head_size = hidden_size // heads[0]
        _check_positive_int("attention_head_size", attention_head_size)
        if embedding_size is not None:
            _check_positive_int("embedding_size", embedding_size)
        if position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"`position_embedding_type` must be one of {POSITION_EMBEDDING_TYPES}, "
                f"got {position_embedding_type!r}."
            )
        if position_embedding_type == "roberta":
            if pad_token_id is None or not 0 <= pad_token_id < max_position_embeddings - 1:
                raise ValueError(
                    "`pad_token_id` must be set and smaller than `max_position_embeddings - 1` when "
                    "`position_embedding_type` is 'roberta' (positions start at pad_token_id + 1), "
                    f"got {pad_token_id!r}."
                )
        for name, value in (
            ("hidden_dropout_prob", hidden_dropout_prob),
            ("attention_probs_dropout_prob", attention_probs_dropout_prob),
            ("classifier_dropout", classifier_dropout),
        ):
            if value is not None or name != "classifier_dropout":
                _check_float(name, value, 0.0, 1.0)
        # LayerNorm's epsilon is a small stabiliser: inf turns every output to zero, values above 1 swamp the variance.
        _check_float("layer_norm_eps", layer_norm_eps, 0.0, 1.0, low_inclusive=False)
        # Standard deviation of the initial weights: inf or NaN gives NaN outputs.
        _check_float("initializer_range", initializer_range, 0.0)
        _check_activation("hidden_act", hidden_act)
        _check_activation("pooler_hidden_act", pooler_hidden_act)
        relative_attention_head_index = _check_relative_attention(
            relative_attention_num_buckets, relative_attention_max_distance, relative_attention_head_index, heads
        )
        pos_att_type = _check_disentangled(pos_att_type, position_buckets, max_relative_positions)
        for name, value in (
            ("relative_embeddings_layer_norm", relative_embeddings_layer_norm),
            ("mask_padded_tokens", mask_padded_tokens),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool, got {value!r}.")
        _check_modern_fields(
            {
                "rotary_theta": rotary_theta,
                "attention_window": attention_window,
                "attention_layer_norm": attention_layer_norm,
                "pre_layer_norm": pre_layer_norm,
                "gated_ffn": gated_ffn,
                "attention_bias": attention_bias,
                "ffn_bias": ffn_bias,
                "layer_norm_bias": layer_norm_bias,
                "head_bias": head_bias,
                "classifier_pooling": classifier_pooling,
                "pooler_layer_norm": pooler_layer_norm,
                "token_head_transform": token_head_transform,
            },
            num_hidden_layers,
        )
        if position_embedding_type == "rotary" and attention_head_size % 2:
            raise ValueError(f"`attention_head_size` must be even for rotary positions, got {attention_head_size}.")
        if pos_att_type and relative_attention_num_buckets:
            raise ValueError(
                "`pos_att_type` (DeBERTa) and `relative_attention_num_buckets` (MPNet) are two kinds of relative "
                "position; a model has at most one."
            )

        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = (
            list(num_attention_heads) if isinstance(num_attention_heads, tuple) else num_attention_heads
        )
        self.attention_head_size = attention_head_size
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.position_embedding_type = position_embedding_type
        self.embedding_size = embedding_size
        self.add_pooling_layer = add_pooling_layer
        self.pooler_hidden_act = pooler_hidden_act
        self.classifier_dropout = classifier_dropout
        self.relative_attention_num_buckets = relative_attention_num_buckets
        self.relative_attention_max_distance = relative_attention_max_distance
        self.relative_attention_head_index = relative_attention_head_index
        self.pos_att_type = pos_att_type
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        self.relative_embeddings_layer_norm = relative_embeddings_layer_norm
        self.mask_padded_tokens = mask_padded_tokens
        # Per-layer fields are stored as given (one value or a list); the `layer_*` properties expand them.
        self.rotary_theta = list(rotary_theta) if isinstance(rotary_theta, tuple) else rotary_theta
        self.attention_window = list(attention_window) if isinstance(attention_window, tuple) else attention_window
        self.pre_layer_norm = pre_layer_norm
        self.attention_layer_norm = (
            list(attention_layer_norm) if isinstance(attention_layer_norm, tuple) else attention_layer_norm
        )
        self.gated_ffn = gated_ffn
        self.attention_bias = attention_bias
        self.ffn_bias = ffn_bias
        self.layer_norm_bias = layer_norm_bias
        self.head_bias = head_bias
        self.classifier_pooling = classifier_pooling
        self.pooler_layer_norm = pooler_layer_norm
        self.token_head_transform = token_head_transform

    @property
    def layer_num_attention_heads(self) -> list[int]:
        """Heads of each layer, as a list of `num_hidden_layers` ints."""
        return _per_layer("num_attention_heads", self.num_attention_heads, self.num_hidden_layers)

    @property
    def layer_intermediate_sizes(self) -> list[int]:
        """FFN width of each layer, as a list of `num_hidden_layers` ints."""
        return _per_layer("intermediate_size", self.intermediate_size, self.num_hidden_layers)

    @property
    def layer_rotary_theta(self) -> list[float]:
        """Rotary θ of each layer (read only with `position_embedding_type="rotary"`)."""
        return _check_modern_fields(self._modern_fields(), self.num_hidden_layers)["rotary_theta"]

    @property
    def layer_attention_window(self) -> list[int]:
        """Attention window of each layer (0 = global attention)."""
        return _check_modern_fields(self._modern_fields(), self.num_hidden_layers)["attention_window"]

    @property
    def layer_attention_layer_norm(self) -> list[bool]:
        """Whether each layer's pre-LayerNorm attention norm exists (False: identity)."""
        return _check_modern_fields(self._modern_fields(), self.num_hidden_layers)["attention_layer_norm"]

    def _modern_fields(self) -> dict[str, Any]:
        names = (
            "rotary_theta",
            "attention_window",
            "attention_layer_norm",
            "pre_layer_norm",
            "gated_ffn",
            "attention_bias",
            "ffn_bias",
            "layer_norm_bias",
            "head_bias",
            "classifier_pooling",
            "pooler_layer_norm",
            "token_head_transform",
        )
        return {name: getattr(self, name) for name in names}

    @property
    def layer_relative_attention_head_index(self) -> list[list[int]]:
        """For each layer, the column of the shared relative-bias table each head reads (see the class docstring)."""
        if self.relative_attention_head_index is not None:
            return [list(index) for index in self.relative_attention_head_index]
        return [list(range(heads)) for heads in self.layer_num_attention_heads]

    @property
    def relative_attention_bias_heads(self) -> int:
        """Columns of the shared relative-bias table (0 without a relative bias)."""
        if not self.relative_attention_num_buckets:
            return 0
        return 1 + max(max(index) for index in self.layer_relative_attention_head_index)

    @property
    def relative_span(self) -> int:
        """DeBERTa's attention span: half the rows of `encoder.rel_embeddings` (0 without disentangled attention)."""
        if not self.pos_att_type:
            return 0
        return self.position_buckets or self.max_relative_positions

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables (`embedding_size`, or `hidden_size` when unset)."""
        return self.embedding_size or self.hidden_size

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BortConfig:
        """
        Builds one of the two Bort shapes; `overrides` replace any field.

        - `"bort"`: the released `amazon/bort` checkpoint (width 1024, FFN 768, 4 layers, 8 heads, 512 positions, one
          token type): 76,156,928 parameters in `BortModel` with a pooler, 75,107,328 without.
        - `"bort-paper"`: the shape whose sizes match the paper's table (56M total, 39M embeddings), i.e. width 768 and
          FFN 1024: 55,350,016 parameters with the pooler (55,351,552 with RoBERTa's 514 position rows). The table
          labels it "H=1024, I=768", but its numbers only fit the swapped widths; the released checkpoint has width
          1024 and FFN 768 (76M). We offer both and let the user choose.

        ```python
        >>> from hf_bort import BortConfig, count_parameters
        >>> count_parameters(BortConfig.from_preset("bort-paper")).total
        55350016
        ```
        """
        if name not in BORT_PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(BORT_PRESETS)}.")
        return cls(**{**BORT_PRESETS[name], **overrides})
