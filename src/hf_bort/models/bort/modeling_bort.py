# This file is copied into every saved Bort checkpoint (``auto_map``) so that plain transformers can load it with
# ``trust_remote_code=True``: it must import nothing but torch, transformers and the modules beside it
# (``.configuration_bort``, ``.configuration_bort_checks``, ``.modeling_bort_attention``, ``.modeling_bort_layers``),
# and it imports each of those directly: transformers 4.x copies only the direct relative imports of a local
# checkpoint's modeling file.
"""PyTorch Bort: BERT's encoder with per-layer heads and FFN widths, BERT's parameter names, and attention through
transformers' attention functions (`attn_implementation="sdpa"`, the default, or `"eager"`).

This module holds the models (the pre-trained base class, `BortModel` and its task heads); the building blocks live
in `modeling_bort_layers` and the attention in `modeling_bort_attention`, and stay importable from here."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import __version__ as _transformers_version
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_bort import BortConfig
from .configuration_bort_checks import MAX_SIZE  # noqa: F401  (imported for transformers 4.x: see the top comment)
from .modeling_bort_attention import (  # noqa: F401  (re-exported: their home before the split)
    ALL_ATTENTION_FUNCTIONS,
    BortSelfAttention,
    apply_rotary,
    eager_attention_forward,
    log_bucket_position,
    relative_position_bucket,
    rotary_cos_sin,
    sdpa_attention_forward,
    window_mask,
)
from .modeling_bort_layers import (  # noqa: F401  (re-exported: their home before the split)
    BortAttention,
    BortEmbeddings,
    BortEncoder,
    BortIntermediate,
    BortLayer,
    BortLMPredictionHead,
    BortOnlyMLMHead,
    BortOutput,
    BortPooler,
    BortPredictionHeadTransform,
    BortSelfOutput,
    _is_tracing,
    _layer_norm,
)

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
