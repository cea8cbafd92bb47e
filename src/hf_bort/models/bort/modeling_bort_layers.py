# Copied into every saved Bort checkpoint with `modeling_bort.py` (which imports it), so that plain transformers can
# load it with ``trust_remote_code=True``: it must import nothing but torch, transformers and the modules beside it
# (``.configuration_bort``, ``.modeling_bort_attention``).
"""Bort's building blocks below the models: embeddings, the transformer layer (attention block, FFN), the encoder
stack with its shared position terms, the pooler and the masked-language-modelling head. Module and parameter names
are BERT's."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput

from .configuration_bort import BortConfig
from .modeling_bort_attention import (
    BortSelfAttention,
    log_bucket_position,
    relative_position_bucket,
    rotary_cos_sin,
    window_mask,
)


def _is_tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _layer_norm(config: BortConfig, width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=config.layer_norm_eps, bias=config.layer_norm_bias)


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
