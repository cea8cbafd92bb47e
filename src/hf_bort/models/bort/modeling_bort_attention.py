# Copied into every saved Bort checkpoint with `modeling_bort.py` (which imports it), so that plain transformers can
# load it with ``trust_remote_code=True``: it must import nothing but torch, transformers and ``.configuration_bort``.
"""Bort's self-attention and the position schemes that enter it: the attention functions (eager, SDPA, transformers'
registered ones), rotary angles (ModernBERT), the local-attention window mask, and the relative-position buckets of
MPNet and DeBERTa."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface

from .configuration_bort import BortConfig


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
