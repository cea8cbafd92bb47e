# This file is copied into every saved Bort checkpoint (``auto_map``) so that plain transformers can load it with
# ``trust_remote_code=True``: it must import nothing but torch, transformers and ``.configuration_bort``.
"""PyTorch Bort: BERT's encoder with per-layer heads and FFN widths, BERT's parameter names, and attention through
transformers' attention functions (`attn_implementation="sdpa"`, the default, or `"eager"`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import AttentionInterface, PreTrainedModel
from transformers import __version__ as _transformers_version
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_bort import BortConfig

try:  # transformers >= 5: initialisers that leave loaded weights alone
    from transformers import initialization as _init
except ImportError:  # pragma: no cover - transformers 4.x
    _init = None

_TRANSFORMERS_V5 = int(_transformers_version.split(".")[0]) >= 5

BORT_AUTO_MAP = {
    "AutoConfig": "configuration_bort.BortConfig",
    "AutoModel": "modeling_bort.BortModel",
    "AutoModelForMaskedLM": "modeling_bort.BortForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_bort.BortForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_bort.BortForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_bort.BortForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_bort.BortForMultipleChoice",
}


def _is_tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _layer_norm(config: BortConfig, width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=config.layer_norm_eps, bias=config.layer_norm_bias)


def rotary_cos_sin(positions: torch.Tensor, head_size: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding (ModernBERT's, RoFormer's) of `positions` [B or 1, L]: cos and sin [.., L, d]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.float, device=positions.device) / head_size))
    freqs = positions[..., None].float() * inv_freq
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates the [B, A, L, d] queries or keys by the rotary angles (halves rotated, as in ModernBERT)."""
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    rotated = torch.cat((-second, first), dim=-1)
    return (x.float() * cos[:, None] + rotated.float() * sin[:, None]).to(x.dtype)


def window_mask(attention_mask: torch.Tensor | None, length: int, window: int, dtype, device) -> torch.Tensor:
    """The additive mask of a local-attention layer: `attention_mask` (or none) with the keys farther than
    `window // 2` from each query masked too (ModernBERT's sliding window)."""
    positions = torch.arange(length, device=device)
    far = (positions[None, :] - positions[:, None]).abs() > window // 2
    base = torch.zeros(1, 1, length, length, dtype=dtype, device=device) if attention_mask is None else attention_mask
    base = base.expand(base.shape[0], 1, length, length)
    return base.masked_fill(far, torch.finfo(dtype).min)


class BortEmbeddings(nn.Module):
    """Word + position (+ token type) embeddings, LayerNorm and dropout, as in BERT."""

    def __init__(self, config: BortConfig):
        super().__init__()
        width = config.embedding_width
        self.position_embedding_type = config.position_embedding_type
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        position_padding = self.padding_idx if self.position_embedding_type == "roberta" else None
        self.position_embeddings = (  # "none": DeBERTa-v3; "rotary": ModernBERT (positions enter the attention)
            nn.Embedding(config.max_position_embeddings, width, padding_idx=position_padding)
            if self.position_embedding_type not in ("none", "rotary")
            else None
        )
        self.mask_padded_tokens = config.mask_padded_tokens
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, width) if config.type_vocab_size > 0 else None
        )
        self.LayerNorm = _layer_norm(config, width)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def _position_ids(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor) -> torch.Tensor:
        seq_length = inputs_embeds.shape[1]
        device = inputs_embeds.device
        offset = 0 if self.position_embedding_type == "absolute" else self.padding_idx + 1
        limit = self.position_embeddings.num_embeddings - offset
        if not _is_tracing() and seq_length > limit:
            raise ValueError(
                f"The input has {seq_length} tokens but this model has {limit} positions "
                f"(`max_position_embeddings`={self.position_embeddings.num_embeddings}); truncate the input."
            )
        if self.position_embedding_type == "absolute":
            return torch.arange(seq_length, device=device).unsqueeze(0)
        # RoBERTa: non-padding tokens count from padding_idx + 1; padding tokens get padding_idx.
        if input_ids is None:
            return torch.arange(self.padding_idx + 1, seq_length + self.padding_idx + 1, device=device).unsqueeze(0)
        mask = input_ids.ne(self.padding_idx).long()
        return torch.cumsum(mask, dim=1) * mask + self.padding_idx

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds
        if self.position_embeddings is not None:
            if position_ids is None:
                position_ids = self._position_ids(input_ids, inputs_embeds)
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        elif token_type_ids is not None and not _is_tracing() and bool(token_type_ids.any()):
            raise ValueError(
                "This Bort model has no token-type embedding (`type_vocab_size=0`) but got non-zero `token_type_ids`."
            )
        embeddings = self.LayerNorm(embeddings)
        if self.mask_padded_tokens and attention_mask is not None and attention_mask.dim() == 2:
            embeddings = embeddings * attention_mask.unsqueeze(-1).to(embeddings.dtype)  # DeBERTa zeroes padding
        return self.dropout(embeddings)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit attention, as transformers' BERT's `eager_attention_forward`: [B, L, A, d] context and [B, A, L, L]
    weights of [B, A, L, d] queries, keys and values under an additive mask."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = F.softmax(scores, dim=-1)
    context = torch.matmul(F.dropout(probs, p=dropout, training=module.training), value)
    return context.transpose(1, 2).contiguous(), probs


def sdpa_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """PyTorch's SDPA, as transformers' `sdpa_attention_forward` for an encoder, minus two things that change the
    exported graph: transformers 4.x slices the mask to the keys' length (Bort's already has it), and an explicit
    `scale=` exports as `Mul(q, Constant)`. ONNX Runtime's transformer optimizer fuses neither into `Attention`
    (docs/exporters.md, "Fused graphs"); SDPA's default scale, 1/sqrt(query.size(-1)), is Bort's outside DeBERTa."""
    context = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, **({"scale": scaling} if scaling else {})
    )
    return context.transpose(1, 2).contiguous(), None


# As transformers' own models with a function of their own (Doge): a local interface, where "sdpa" is Bort's and
# every other name (registered with `AttentionInterface.register`) is transformers'.
ALL_ATTENTION_FUNCTIONS = AttentionInterface()
ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_attention_forward


class BortSelfAttention(nn.Module):
    """Multi-head self-attention with `num_heads * attention_head_size` inner width (may differ from the hidden)."""

    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        self.num_attention_heads = config.layer_num_attention_heads[layer_idx]
        self.attention_head_size = config.attention_head_size
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size, bias=config.attention_bias)
        self.key = nn.Linear(config.hidden_size, self.all_head_size, bias=config.attention_bias)
        self.value = nn.Linear(config.hidden_size, self.all_head_size, bias=config.attention_bias)
        self.config = config  # `config._attn_implementation` picks the attention function at each call
        self.is_causal = False  # an encoder (attention functions registered in transformers read it)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.scaling = self.attention_head_size**-0.5
        # Columns of the shared relative-bias table read by this layer's heads (MPNet); None without a bias.
        self.relative_head_index = (
            config.layer_relative_attention_head_index[layer_idx] if config.relative_attention_num_buckets else None
        )
        # DeBERTa's disentangled attention: every term (content and each position term) is scaled alike.
        self.pos_att_type = config.pos_att_type or []
        if self.pos_att_type:
            self.scaling = (self.attention_head_size * (1 + len(self.pos_att_type))) ** -0.5

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        position_bias: torch.Tensor | None = None,
        relative: tuple[torch.Tensor, torch.Tensor] | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_length, _ = hidden_states.shape
        if position_bias is not None:  # [1, table heads, L, L] -> this layer's heads, added to the additive mask
            index = self.relative_head_index
            if index == list(range(len(index))):
                position_bias = position_bias[:, : len(index)]
            else:
                position_bias = position_bias[:, index]
            attention_mask = position_bias if attention_mask is None else attention_mask + position_bias
        shape = (batch_size, seq_length, self.num_attention_heads, self.attention_head_size)
        query = self.query(hidden_states).view(shape).transpose(1, 2)
        key = self.key(hidden_states).view(shape).transpose(1, 2)
        value = self.value(hidden_states).view(shape).transpose(1, 2)
        if rotary is not None:  # ModernBERT: rotate queries and keys by their positions
            query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)
        scale = None
        if relative is not None:  # DeBERTa: add the scaled position terms to the additive mask
            bias = self._disentangled_bias(query, key, *relative)
            attention_mask = bias if attention_mask is None else attention_mask + bias
            scale = self.scaling
        dropout = self.dropout_prob if self.training else 0.0
        # As transformers' own models: `config._attn_implementation` ("sdpa" unless `attn_implementation=` asks
        # otherwise) picks the function. SDPA does not return the weights: `output_attentions` runs eager for the call.
        if self.config._attn_implementation == "eager" or output_attentions:
            attention_interface = eager_attention_forward
        elif hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):  # transformers 5.x
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        else:  # transformers 4.x
            attention_interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        # `scale` is None outside DeBERTa: the default, 1/sqrt(query.size(-1)), is `self.scaling` (and fuses in ONNX).
        context, probs = attention_interface(
            self, query, key, value, attention_mask, dropout=dropout, scaling=scale, is_causal=False
        )
        context = context.reshape(batch_size, seq_length, self.all_head_size)
        return context, probs if output_attentions else None

    def _disentangled_bias(
        self, query: torch.Tensor, key: torch.Tensor, rel_embeddings: torch.Tensor, relative_pos: torch.Tensor
    ) -> torch.Tensor:
        """DeBERTa's content-to-position and position-to-content scores [B, A, L, L], already scaled."""
        span = rel_embeddings.shape[0] // 2
        heads, head_size = self.num_attention_heads, self.attention_head_size
        score = 0
        if "c2p" in self.pos_att_type:
            pos_key = self.key(rel_embeddings).view(2 * span, heads, head_size).transpose(0, 1)  # [A, 2S, d]
            c2p = torch.matmul(query, pos_key.transpose(-1, -2))  # [B, A, L, 2S]
            index = torch.clamp(relative_pos + span, 0, 2 * span - 1)
            c2p = torch.gather(c2p, -1, index.expand(c2p.shape[0], heads, *relative_pos.shape))
            score = score + c2p * self.scaling
        if "p2c" in self.pos_att_type:
            pos_query = self.query(rel_embeddings).view(2 * span, heads, head_size).transpose(0, 1)
            p2c = torch.matmul(key, pos_query.transpose(-1, -2))  # [B, A, L, 2S]
            index = torch.clamp(-relative_pos + span, 0, 2 * span - 1)
            p2c = torch.gather(p2c, -1, index.expand(p2c.shape[0], heads, *relative_pos.shape)).transpose(-1, -2)
            score = score + p2c * self.scaling
        return score


class BortSelfOutput(nn.Module):
    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        inner = config.layer_num_attention_heads[layer_idx] * config.attention_head_size
        self.dense = nn.Linear(inner, config.hidden_size, bias=config.attention_bias)
        self.pre_layer_norm = config.pre_layer_norm
        # Pre-LayerNorm (ModernBERT): normalises the attention's input; the first layer's may be the identity.
        has_norm = config.layer_attention_layer_norm[layer_idx]
        self.LayerNorm = _layer_norm(config, config.hidden_size) if has_norm else nn.Identity()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        output = self.dropout(self.dense(hidden_states)) + input_tensor
        return output if self.pre_layer_norm else self.LayerNorm(output)


class BortAttention(nn.Module):
    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        self.self = BortSelfAttention(config, layer_idx)
        self.output = BortSelfOutput(config, layer_idx)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        output_attentions=False,
        position_bias=None,
        relative=None,
        rotary=None,
    ):
        normed = self.output.LayerNorm(hidden_states) if self.output.pre_layer_norm else hidden_states
        context, probs = self.self(normed, attention_mask, output_attentions, position_bias, relative, rotary)
        return self.output(context, hidden_states), probs


class BortIntermediate(nn.Module):
    """`act(dense(x))`, or with `gated_ffn` the GLU `act(dense(x)) * gate(x)` (ModernBERT's GeGLU): neuron `i` of
    the FFN is row `i` of both `dense` and `gate`, so pruning it cuts both."""

    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        width = config.layer_intermediate_sizes[layer_idx]
        self.dense = nn.Linear(config.hidden_size, width, bias=config.ffn_bias)
        self.gate = nn.Linear(config.hidden_size, width, bias=config.ffn_bias) if config.gated_ffn else None
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        output = self.intermediate_act_fn(self.dense(hidden_states))
        return output if self.gate is None else output * self.gate(hidden_states)


class BortOutput(nn.Module):
    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        self.dense = nn.Linear(config.layer_intermediate_sizes[layer_idx], config.hidden_size, bias=config.ffn_bias)
        self.pre_layer_norm = config.pre_layer_norm  # then `LayerNorm` normalises the FFN's input
        self.LayerNorm = _layer_norm(config, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        output = self.dropout(self.dense(hidden_states)) + input_tensor
        return output if self.pre_layer_norm else self.LayerNorm(output)


class BortLayer(GradientCheckpointingLayer):
    def __init__(self, config: BortConfig, layer_idx: int):
        super().__init__()
        self.attention = BortAttention(config, layer_idx)
        self.intermediate = BortIntermediate(config, layer_idx)
        self.output = BortOutput(config, layer_idx)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        output_attentions=False,
        position_bias=None,
        relative=None,
        rotary=None,
    ):
        attention_output, probs = self.attention(
            hidden_states, attention_mask, output_attentions, position_bias, relative, rotary
        )
        ffn_input = self.output.LayerNorm(attention_output) if self.output.pre_layer_norm else attention_output
        layer_output = self.output(self.intermediate(ffn_input), attention_output)
        return layer_output, probs


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """MPNet's (T5-style, bidirectional) bucket of each relative position `key - query`: half of the buckets per
    direction, exact for distances below `num_buckets // 4`, logarithmic up to `max_distance`, then the last."""
    buckets = 0
    n = -relative_position
    num_buckets //= 2
    buckets += (n < 0).to(torch.long) * num_buckets
    n = torch.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    return buckets + torch.where(is_small, n, val_if_large)


def log_bucket_position(relative_position: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """DeBERTa's bucket of a relative position `query - key`: exact within `bucket_size // 2`, logarithmic beyond."""
    sign = torch.sign(relative_position)
    mid = bucket_size // 2
    abs_pos = torch.where(
        (relative_position < mid) & (relative_position > -mid),
        torch.tensor(mid - 1).type_as(relative_position),
        torch.abs(relative_position),
    )
    log_pos = (
        torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    )
    return torch.where(abs_pos <= mid, relative_position.type_as(log_pos), log_pos * sign).to(torch.long)


class BortEncoder(nn.Module):
    def __init__(self, config: BortConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BortLayer(config, index) for index in range(config.num_hidden_layers)])
        if config.relative_attention_num_buckets:  # MPNet: one bias table shared by all layers
            self.relative_attention_bias = nn.Embedding(
                config.relative_attention_num_buckets, config.relative_attention_bias_heads
            )
        if config.pos_att_type:  # DeBERTa: relative embeddings shared by all layers, projected by each layer
            self.rel_embeddings = nn.Embedding(2 * config.relative_span, config.hidden_size)
            if config.relative_embeddings_layer_norm:
                self.LayerNorm = _layer_norm(config, config.hidden_size)
        if config.pre_layer_norm:  # ModernBERT: the last layer's output is normalised
            self.final_layer_norm = _layer_norm(config, config.hidden_size)
        self.gradient_checkpointing = False

    def rotary(self, hidden_states: torch.Tensor, position_ids: torch.Tensor | None) -> list | None:
        """Per layer, the rotary (cos, sin) of its θ (ModernBERT), or None without rotary positions."""
        if self.config.position_embedding_type != "rotary":
            return None
        if position_ids is None:
            position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0)
        by_theta = {}
        for theta in set(self.config.layer_rotary_theta):
            cos, sin = rotary_cos_sin(position_ids, self.config.attention_head_size, theta)
            by_theta[theta] = (cos.to(hidden_states.dtype), sin.to(hidden_states.dtype))
        return [by_theta[theta] for theta in self.config.layer_rotary_theta]

    def layer_masks(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> list:
        """Per layer, its additive mask: the padding mask, windowed on local-attention layers (ModernBERT)."""
        by_window = {0: attention_mask}
        for window in set(self.config.layer_attention_window) - {0}:
            length = hidden_states.shape[1]
            by_window[window] = window_mask(attention_mask, length, window, hidden_states.dtype, hidden_states.device)
        return [by_window[window] for window in self.config.layer_attention_window]

    def relative(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """DeBERTa's (normalised) relative embeddings and relative positions [L, L], or None without them."""
        if not self.config.pos_att_type:
            return None
        rel_embeddings = self.rel_embeddings.weight
        if self.config.relative_embeddings_layer_norm:
            rel_embeddings = self.LayerNorm(rel_embeddings)
        positions = torch.arange(hidden_states.shape[1], dtype=torch.long, device=hidden_states.device)
        relative_pos = positions[:, None] - positions[None, :]
        if self.config.position_buckets > 0:
            relative_pos = log_bucket_position(
                relative_pos, self.config.position_buckets, self.config.max_relative_positions
            )
        return rel_embeddings, relative_pos

    def position_bias(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """The relative position bias [1, table heads, L, L] (MPNet), or None when the model has none."""
        if not self.config.relative_attention_num_buckets:
            return None
        length = hidden_states.shape[1]
        positions = torch.arange(length, dtype=torch.long, device=hidden_states.device)
        bucket = relative_position_bucket(
            positions[None, :] - positions[:, None],
            self.config.relative_attention_num_buckets,
            self.config.relative_attention_max_distance,
        )
        return self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0).to(hidden_states.dtype)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        output_attentions=False,
        output_hidden_states=False,
        position_ids=None,
    ):
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        position_bias, relative = self.position_bias(hidden_states), self.relative(hidden_states)
        rotary = self.rotary(hidden_states, position_ids) or [None] * len(self.layer)
        masks = self.layer_masks(hidden_states, attention_mask)
        for layer, layer_mask, layer_rotary in zip(self.layer, masks, rotary, strict=True):
            hidden_states, probs = layer(
                hidden_states,
                layer_mask,
                output_attentions=output_attentions,
                position_bias=position_bias,
                relative=relative,
                rotary=layer_rotary,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (probs,)
        if hasattr(self, "final_layer_norm"):
            hidden_states = self.final_layer_norm(hidden_states)
            if output_hidden_states:
                all_hidden_states = (*all_hidden_states[:-1], hidden_states)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


class BortPooler(nn.Module):
    """Dense + activation on the first token, as BERT's pooler (and RoBERTa's / ELECTRA's classifier input); with
    ModernBERT's options, on the mean of the non-padding tokens and followed by a LayerNorm."""

    def __init__(self, config: BortConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=config.head_bias)
        self.activation = ACT2FN[config.pooler_hidden_act]
        self.LayerNorm = _layer_norm(config, config.hidden_size) if config.pooler_layer_norm else None
        self.pooling = config.classifier_pooling

    def transform(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Dense, activation (and LayerNorm) of any [.., H] states: every token's with `token_head_transform`."""
        output = self.activation(self.dense(hidden_states))
        return output if self.LayerNorm is None else self.LayerNorm(output)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "cls":
            return self.transform(hidden_states[:, 0])
        if attention_mask is None or attention_mask.dim() != 2:
            attention_mask = torch.ones(hidden_states.shape[:2], device=hidden_states.device)
        weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
        return self.transform((hidden_states * weights).sum(dim=1) / weights.sum(dim=1))


class BortPredictionHeadTransform(nn.Module):
    def __init__(self, config: BortConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_width, bias=config.head_bias)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = _layer_norm(config, config.embedding_width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BortLMPredictionHead(nn.Module):
    def __init__(self, config: BortConfig):
        super().__init__()
        self.transform = BortPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.embedding_width, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        # One parameter under two names (as in BERT): `resize_token_embeddings` resizes both.
        self.decoder.bias = self.bias

    def _tie_weights(self) -> None:
        # transformers 4.x calls this from `tie_weights()` after loading: a checkpoint stores the shared tensor once
        # (as `cls.predictions.bias`), and loading replaces `self.bias`, so the link must be made again or
        # `decoder.bias` keeps a freshly initialised copy. transformers 5.x ties through `_tied_weights_keys`.
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BortOnlyMLMHead(nn.Module):
    def __init__(self, config: BortConfig):
        super().__init__()
        self.predictions = BortLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BortPreTrainedModel(PreTrainedModel):
    """Weight initialisation, Auto-class code shipping and the shared plumbing of every Bort model."""

    config_class = BortConfig
    base_model_prefix = "bort"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["BortLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # Linear, Embedding (padding row zeroed), LayerNorm, as BERT
        if isinstance(module, BortLMPredictionHead):
            if _init is not None:
                _init.zeros_(module.bias)
            else:
                module.bias.data.zero_()

    def save_pretrained(self, save_directory, *args, **kwargs):
        # When the code travels with the checkpoint, map every Auto class (not only the saved one) to it, so the
        # checkpoint of a classifier also loads as AutoModel / AutoModelForMaskedLM with trust_remote_code=True.
        if getattr(self, "_auto_class", None) is not None:
            self.config.auto_map = {**BORT_AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _return_dict(self, return_dict: bool | None) -> bool:
        return self.config.return_dict if return_dict is None else return_dict


def _check_inputs(
    input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, attention_mask: torch.Tensor | None
) -> None:
    """Refuse inputs that would fail deep inside (an empty sequence) or give silently wrong outputs (a mask that is
    not 0/1, e.g. token counts or an additive mask, which the 1/0 -> additive conversion would misread)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return  # shape- and data-dependent checks cannot be traced (an export validates against the eager model)
    length = input_ids.shape[-1] if input_ids is not None else inputs_embeds.shape[-2]
    if length == 0:
        raise ValueError("The input has sequence length 0: give at least one token per sequence.")
    if attention_mask is None or attention_mask.dtype == torch.bool:
        return
    if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
        values = torch.unique(attention_mask[(attention_mask != 0) & (attention_mask != 1)])[:5].tolist()
        raise ValueError(f"`attention_mask` must hold only 0 (padding) and 1 (token), or booleans; it holds {values}.")


def _extended_attention_mask(
    attention_mask: torch.Tensor | None, dtype: torch.dtype, mask_queries: bool = False
) -> torch.Tensor | None:
    """(batch, seq) 1/0 mask -> additive (batch, 1, 1, seq) mask (keys), or (batch, 1, seq, seq) with `mask_queries`
    (DeBERTa: padded query rows are masked too); None when there is nothing to mask."""
    if attention_mask is None:
        return None
    if attention_mask.dim() == 2 and mask_queries:
        attention_mask = attention_mask[:, None, None, :] * attention_mask[:, None, :, None]
    elif attention_mask.dim() == 2:
        attention_mask = attention_mask[:, None, None, :]
    elif attention_mask.dim() == 3:
        attention_mask = attention_mask[:, None, :, :]
    return (1.0 - attention_mask.to(dtype)) * torch.finfo(dtype).min


class BortModel(BortPreTrainedModel):
    r"""
    The bare Bort encoder. Parameter names are those of `transformers.BertModel`, so a BERT state dict loads as is.

    Example:

    ```python
    >>> import torch
    >>> from hf_bort import BortConfig, BortModel
    >>> model = BortModel(BortConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=[4, 2],
    ...                              attention_head_size=8, intermediate_size=[64, 16], vocab_size=100))
    >>> model(torch.tensor([[0, 5, 6, 2]])).last_hidden_state.shape
    torch.Size([1, 4, 32])
    ```
    """

    def __init__(self, config: BortConfig, add_pooling_layer: bool | None = None):
        super().__init__(config)
        self.embeddings = BortEmbeddings(config)
        if config.embedding_width != config.hidden_size:
            self.embeddings_project = nn.Linear(config.embedding_width, config.hidden_size)
        self.encoder = BortEncoder(config)
        add_pooling_layer = config.add_pooling_layer if add_pooling_layer is None else add_pooling_layer
        self.pooler = BortPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        _check_inputs(input_ids, inputs_embeds, attention_mask)
        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, attention_mask)
        if hasattr(self, "embeddings_project"):
            embedding_output = self.embeddings_project(embedding_output)
        encoder_outputs = self.encoder(
            embedding_output,
            _extended_attention_mask(attention_mask, embedding_output.dtype, self.config.mask_padded_tokens),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            position_ids=position_ids if self.config.position_embedding_type == "rotary" else None,
        )
        sequence_output = encoder_outputs.last_hidden_state
        pooled_output = self.pooler(sequence_output, attention_mask) if self.pooler is not None else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


def _classifier_dropout(config: BortConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BortForMaskedLM(BortPreTrainedModel):
    """Bort with BERT's masked-language-modelling head (`cls.predictions`, decoder tied to the word embeddings)."""

    if _TRANSFORMERS_V5:
        _tied_weights_keys = {
            "cls.predictions.decoder.weight": "bort.embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias",
        }
    else:
        _tied_weights_keys = ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias"]

    def __init__(self, config: BortConfig):
        super().__init__(config)
        self.bort = BortModel(config, add_pooling_layer=False)
        self.cls = BortOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels: torch.Tensor | None = None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        outputs = self.bort(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class BortForSequenceClassification(BortPreTrainedModel):
    """Bort with BERT's classifier: pooler (dense + `pooler_hidden_act` on the first token), dropout, linear."""

    def __init__(self, config: BortConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bort = BortModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels: torch.Tensor | None = None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        outputs = self.bort(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self._classification_loss(logits, labels)
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()

    def _classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return MSELoss()(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return MSELoss()(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


def _token_states(bort: BortModel, outputs) -> torch.Tensor:
    """The states the token-level heads read: every token through the pooler's transform (ModernBERT) or as is."""
    if bort.config.token_head_transform:
        return bort.pooler.transform(outputs.last_hidden_state)
    return outputs.last_hidden_state


class BortForTokenClassification(BortPreTrainedModel):
    def __init__(self, config: BortConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bort = BortModel(config, add_pooling_layer=config.token_head_transform)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels: torch.Tensor | None = None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        outputs = self.bort(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(_token_states(self.bort, outputs)))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class BortForQuestionAnswering(BortPreTrainedModel):
    def __init__(self, config: BortConfig):
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(f"`num_labels` must be 2 (start, end) for question answering, got {config.num_labels}.")
        self.num_labels = config.num_labels
        self.bort = BortModel(config, add_pooling_layer=config.token_head_transform)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput | tuple:
        outputs = self.bort(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.qa_outputs(_token_states(self.bort, outputs))
        start_logits, end_logits = (part.squeeze(-1).contiguous() for part in logits.split(1, dim=-1))
        total_loss = None
        if start_positions is not None and end_positions is not None:
            ignored_index = start_logits.size(1)
            start_positions = start_positions.view(-1).clamp(0, ignored_index)
            end_positions = end_positions.view(-1).clamp(0, ignored_index)
            loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
            total_loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2
        output = QuestionAnsweringModelOutput(
            loss=total_loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class BortForMultipleChoice(BortPreTrainedModel):
    def __init__(self, config: BortConfig):
        super().__init__(config)
        self.bort = BortModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels: torch.Tensor | None = None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> MultipleChoiceModelOutput | tuple:
        num_choices = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]

        def flat(tensor):
            return None if tensor is None else tensor.reshape(-1, *tensor.shape[2:])

        outputs = self.bort(
            flat(input_ids),
            attention_mask=flat(attention_mask),
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        reshaped_logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)
        loss = CrossEntropyLoss()(reshaped_logits, labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=reshaped_logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


__all__ = [
    "BORT_AUTO_MAP",
    "BortForMaskedLM",
    "BortForMultipleChoice",
    "BortForQuestionAnswering",
    "BortForSequenceClassification",
    "BortForTokenClassification",
    "BortModel",
    "BortPreTrainedModel",
]
