"""Exact parameter count of a Bort model from its configuration alone (no model is built)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import PretrainedConfig

from .configuration_bort import BortConfig

# Tasks (named as optimum / pipelines name them) and whether their model class carries the pooler.
TASK_HAS_POOLER = {
    "feature-extraction": None,  # BortModel: as `config.add_pooling_layer` says
    "fill-mask": False,
    "text-classification": True,
    "token-classification": False,
    "question-answering": False,
    "multiple-choice": True,
}


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of one Bort model, by part. `total` is what `sum(p.numel() for p in model.parameters())` gives."""

    embeddings: int
    encoder: int
    pooler: int
    head: int

    @property
    def total(self) -> int:
        return self.embeddings + self.encoder + self.pooler + self.head

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def count_parameters(config: PretrainedConfig, task: str = "feature-extraction") -> ParameterCount:
    """
    Counts the parameters of the Bort model that `config` describes for `task`, exactly, without building it.

    `config` is a [`BortConfig`] or the configuration of any encoder [`convert_to_bort`] supports (BERT, RoBERTa,
    XLM-R, CamemBERT, ELECTRA, DistilBERT, MPNet, DeBERTa-v2/v3, ModernBERT), which is first translated into the
    equivalent Bort configuration.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from hf_bort import count_parameters
    >>> large = BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    >>> count_parameters(large).total, count_parameters(large).embeddings
    (335141888, 31782912)
    ```
    """
    if task not in TASK_HAS_POOLER:
        raise ValueError(f"`task` must be one of {sorted(TASK_HAS_POOLER)}, got {task!r}.")
    if not isinstance(config, BortConfig):
        from .convert import bort_config_from  # the conversion table lives with the converter

        config = bort_config_from(config)

    hidden, width = config.hidden_size, config.embedding_width
    norm = 2 if config.layer_norm_bias else 1  # parameters per LayerNorm unit
    positions = config.max_position_embeddings if config.position_embedding_type not in ("none", "rotary") else 0
    embeddings = (config.vocab_size + positions + config.type_vocab_size) * width + norm * width
    if width != hidden:
        embeddings += _linear(width, hidden)  # embeddings_project

    encoder = config.relative_attention_num_buckets * config.relative_attention_bias_heads  # MPNet's shared bias
    encoder += 2 * config.relative_span * hidden  # DeBERTa's relative embeddings
    if config.relative_span and config.relative_embeddings_layer_norm:
        encoder += norm * hidden
    if config.pre_layer_norm:
        encoder += norm * hidden  # final_layer_norm
    attention_bias, ffn_bias = config.attention_bias, config.ffn_bias
    ffn_matrices = 2 if config.gated_ffn else 1  # GLU: dense and gate
    for heads, intermediate, attention_norm in zip(
        config.layer_num_attention_heads,
        config.layer_intermediate_sizes,
        config.layer_attention_layer_norm,
        strict=True,
    ):
        inner = heads * config.attention_head_size
        encoder += 3 * _linear(hidden, inner, attention_bias) + _linear(inner, hidden, attention_bias)  # Q, K, V, O
        encoder += norm * hidden if attention_norm else 0  # attention LayerNorm (ModernBERT's layer 0: none)
        encoder += ffn_matrices * _linear(hidden, intermediate, ffn_bias) + _linear(intermediate, hidden, ffn_bias)
        encoder += norm * hidden  # FFN LayerNorm

    has_pooler = TASK_HAS_POOLER[task]
    if has_pooler is None:
        has_pooler = config.add_pooling_layer
    if task in ("token-classification", "question-answering"):
        has_pooler = config.token_head_transform  # ModernBERT: the pooler's transform on every token
    pooler = _linear(hidden, hidden, config.head_bias) if has_pooler else 0
    if has_pooler and config.pooler_layer_norm:
        pooler += norm * hidden

    if task == "fill-mask":
        head = _linear(hidden, width, config.head_bias) + norm * width + config.vocab_size  # transform, norm, bias
        if not getattr(config, "tie_word_embeddings", True):
            head += config.vocab_size * width
    elif task in ("text-classification", "token-classification", "question-answering"):
        head = _linear(hidden, config.num_labels)
    elif task == "multiple-choice":
        head = _linear(hidden, 1)
    else:
        head = 0
    return ParameterCount(embeddings=embeddings, encoder=encoder, pooler=pooler, head=head)
