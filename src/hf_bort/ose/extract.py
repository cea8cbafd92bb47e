"""
Extraction of a sub-network from a source encoder: the units a candidate keeps, chosen by importance (layers, heads,
FFN neurons and residual dimensions scored on calibration text by [`hf_bort.ose.importance`]), then consistent slicing
of every tensor into a smaller Bort model.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.bort.configuration_bort import BortConfig
from ..models.bort.convert import SUPPORTED_MODEL_TYPES, convert_to_bort
from ..models.bort.modeling_bort import BortModel, BortPreTrainedModel
from ..models.sentence_transformers_folder import read_layout, transformer_source
from .config import LAYER_SELECTIONS
from .costs import candidate_config, layer_fields
from .importance import Importance, compute_importance  # noqa: F401  (compute_importance: its home before the split)
from .space import Candidate

logger = logging.getLogger(__name__)


@dataclass
class ExtractionPlan:
    """Which source units a candidate keeps: layer indices, per-layer head and neuron indices, residual dims."""

    layers: list[int]
    heads: list[list[int]]
    neurons: list[list[int]]
    dims: list[int]
    config: BortConfig = field(repr=False)
    bias_columns: list[int] | None = None  # columns of MPNet's shared relative-bias table that the kept heads read


def load_source_as_bort(source: Any, **kwargs) -> BortPreTrainedModel | None:
    """
    The source as an equivalent Bort model (via [`convert_to_bort`]), or `None` when its type has no weight mapping
    (then candidates are initialised randomly, with a warning).
    """
    from transformers import AutoConfig, AutoModel, PreTrainedModel

    if isinstance(source, BortPreTrainedModel):
        return source
    if isinstance(source, PreTrainedModel):
        if source.config.model_type in SUPPORTED_MODEL_TYPES:
            return convert_to_bort(source)
        return None
    if isinstance(source, (str, os.PathLike)):
        source = transformer_source(source)  # a sentence-transformers folder may keep its encoder in a sub-folder
        config = AutoConfig.from_pretrained(source, **kwargs)
        if config.model_type == "bort":
            return AutoModel.from_pretrained(source, **kwargs)
        if config.model_type in SUPPORTED_MODEL_TYPES:
            return convert_to_bort(source, **kwargs)
        return None
    raise TypeError(f"`source` must be a model or a path / Hub id, got {type(source).__name__}.")


def generic_bort_config(config) -> BortConfig:
    """A Bort config with the shape of any encoder config (for sources without a weight mapping: random init)."""
    inner = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
    if inner is None:
        raise ValueError(f"Cannot read the FFN width of a {config.model_type!r} config (`intermediate_size`).")
    return BortConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=inner,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=getattr(config, "type_vocab_size", 0) or 0,
        layer_norm_eps=getattr(config, "layer_norm_eps", 1e-12),
        pad_token_id=getattr(config, "pad_token_id", 0),
        add_pooling_layer=False,
    )


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k largest scores, in ascending index order (ties broken by the lower index)."""
    order = sorted(range(scores.numel()), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


def _select_layers(importance: Importance, depth: int, selection: str) -> list[int]:
    total = importance.layers.numel()
    if selection == "first":
        return list(range(depth))
    if selection == "uniform":
        if depth == 1:
            return [total - 1]
        return sorted({round(i * (total - 1) / (depth - 1)) for i in range(depth)})
    return _top(importance.layers, depth)


def _global_allocation(scores: list[torch.Tensor], total: int) -> list[list[int]]:
    """Keeps the `total` best units over all layers (scores normalised per layer), at least one per layer."""
    normalised = [s / s.sum().clamp_min(1e-12) for s in scores]
    keep = [[_top(s, 1)[0]] for s in normalised]
    pool = sorted(
        (
            (float(s[i]), layer, i)
            for layer, s in enumerate(normalised)
            for i in range(s.numel())
            if i != keep[layer][0]
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    for _, layer, index in pool[: max(0, total - len(scores))]:
        keep[layer].append(index)
    return [sorted(k) for k in keep]


def plan_extraction(
    source_config: BortConfig,
    candidate: Candidate,
    importance: Importance,
    *,
    heterogeneous: bool = False,
    layer_selection: str = "importance",
) -> ExtractionPlan:
    """
    Chooses the units `candidate` keeps: its D layers (the most important, `"first"` D, or `"uniform"`ly spread),
    then in each kept layer the A most important heads and I neurons, and the H most important residual dimensions.
    With `heterogeneous=True`, the D·A heads and D·I neurons are chosen over all kept layers at once (per-layer
    counts then differ; every layer keeps at least one head and one neuron).
    """
    if layer_selection not in LAYER_SELECTIONS:
        raise ValueError(f"`layer_selection` must be one of {LAYER_SELECTIONS}, got {layer_selection!r}.")
    source_heads = source_config.layer_num_attention_heads
    source_inner = source_config.layer_intermediate_sizes
    for name, value, bound in (
        ("num_layers", candidate.num_layers, source_config.num_hidden_layers),
        ("num_heads", candidate.num_heads, min(source_heads)),
        ("hidden_size", candidate.hidden_size, source_config.hidden_size),
        ("intermediate_size", candidate.intermediate_size, min(source_inner)),
    ):
        if value > bound:
            raise ValueError(
                f"Candidate `{name}` {value} exceeds the source's {bound}: extraction cannot grow a model."
            )
    if candidate.head_size != source_config.attention_head_size:
        raise ValueError(
            f"Candidate `head_size` {candidate.head_size} differs from the source's attention_head_size "
            f"{source_config.attention_head_size}: extraction keeps whole heads (use SearchSpace.from_source)."
        )
    layers = _select_layers(importance, candidate.num_layers, layer_selection)
    if heterogeneous:
        heads = _global_allocation([importance.heads[i] for i in layers], candidate.num_heads * len(layers))
        neurons = _global_allocation(
            [importance.neurons[i] for i in layers], candidate.intermediate_size * len(layers)
        )
    else:
        heads = [_top(importance.heads[i], candidate.num_heads) for i in layers]
        neurons = [_top(importance.neurons[i], candidate.intermediate_size) for i in layers]
    dims = _top(importance.dims, candidate.hidden_size)
    overrides = {}
    if heterogeneous:
        overrides = {"num_attention_heads": [len(h) for h in heads], "intermediate_size": [len(n) for n in neurons]}
    overrides.update(layer_fields(source_config, layers))  # a kept layer keeps its θ, window and norm (ModernBERT)
    bias_columns = _relative_bias_columns(source_config, layers, heads)
    if bias_columns is not None:
        overrides["relative_attention_head_index"] = bias_columns[1]
    config = candidate_config(candidate, source_config, **overrides)
    return ExtractionPlan(
        layers=layers,
        heads=heads,
        neurons=neurons,
        dims=dims,
        config=config,
        bias_columns=None if bias_columns is None else bias_columns[0],
    )


def _relative_bias_columns(
    source_config: BortConfig, layers: list[int], heads: list[list[int]]
) -> tuple[list[int], list[list[int]] | None] | None:
    """
    For a source with MPNet's shared relative bias: the table columns the kept heads read (sorted), and each kept
    layer's index into them (None when every layer reads columns 0 … heads - 1, as an unextracted model does).
    """
    if not source_config.relative_attention_num_buckets:
        return None
    source_index = source_config.layer_relative_attention_head_index
    reads = [[source_index[layer][head] for head in kept] for layer, kept in zip(layers, heads, strict=True)]
    columns = sorted({column for read in reads for column in read})
    index = [[columns.index(column) for column in read] for read in reads]
    identity = all(read == list(range(len(read))) for read in index)
    return columns, None if identity else index


_LAYER_KEY = re.compile(r"^(?P<prefix>.*encoder\.layer\.)(?P<index>\d+)\.(?P<rest>.+)$")


def _slice(tensor: torch.Tensor, rows: list[int] | None, cols: list[int] | None = None) -> torch.Tensor:
    if rows is not None:
        tensor = tensor.index_select(0, torch.as_tensor(rows, dtype=torch.long))
    if cols is not None:
        tensor = tensor.index_select(1, torch.as_tensor(cols, dtype=torch.long))
    return tensor.clone()


def _head_rows(heads: list[int], head_size: int) -> list[int]:
    return [h * head_size + j for h in heads for j in range(head_size)]


def slice_state_dict(
    state_dict: dict[str, torch.Tensor], plan: ExtractionPlan, source_config: BortConfig
) -> dict[str, torch.Tensor]:
    """Slices every tensor of a Bort state dict (any head) to the units `plan` keeps, renumbering the layers."""
    dims = plan.dims
    projected = source_config.embedding_width != source_config.hidden_size
    emb = None if projected else dims  # embedding-width slicing (only when embeddings live in the residual width)
    head_size = source_config.attention_head_size
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        match = _LAYER_KEY.match(key)
        if match:
            source_index = int(match["index"])
            if source_index not in plan.layers:
                continue
            new_index = plan.layers.index(source_index)
            rest = match["rest"]
            heads = _head_rows(plan.heads[new_index], head_size)
            neurons = plan.neurons[new_index]
            if rest.startswith("attention.self."):
                value = _slice(tensor, heads, dims if tensor.dim() == 2 else None)
            elif rest.startswith("attention.output.dense."):
                value = _slice(tensor, dims, heads if tensor.dim() == 2 else None)
            elif rest.startswith(("intermediate.dense.", "intermediate.gate.")):  # GLU: a neuron is both rows
                value = _slice(tensor, neurons, dims if tensor.dim() == 2 else None)
            elif rest.startswith("output.dense."):
                value = _slice(tensor, dims, neurons if tensor.dim() == 2 else None)
            elif "LayerNorm" in rest:
                value = _slice(tensor, dims)
            else:
                raise KeyError(f"Do not know how to slice {key!r}.")
            out[f"{match['prefix']}{new_index}.{rest}"] = value
            continue
        if key.endswith("encoder.rel_embeddings.weight"):  # DeBERTa's relative embeddings live in the residual width
            value = _slice(tensor, None, dims)
        elif ".encoder.LayerNorm." in f".{key}":  # ... and so does their LayerNorm
            value = _slice(tensor, dims)
        elif ".encoder.final_layer_norm." in f".{key}" or "pooler.LayerNorm." in key:  # ModernBERT's norms
            value = _slice(tensor, dims)
        elif "embeddings." in key and "embeddings_project" not in key:
            value = _slice(tensor, None, emb) if tensor.dim() == 2 else _slice(tensor, emb)
        elif "embeddings_project." in key:
            value = _slice(tensor, dims)
        elif key.endswith("encoder.relative_attention_bias.weight"):
            value = _slice(tensor, None, plan.bias_columns)
        elif "pooler.dense." in key:
            value = _slice(tensor, dims, dims if tensor.dim() == 2 else None)
        elif "predictions.transform.dense." in key:
            value = _slice(tensor, emb, dims if tensor.dim() == 2 else None)
        elif "predictions.transform.LayerNorm." in key:
            value = _slice(tensor, emb)
        elif "predictions.decoder.weight" in key:
            value = _slice(tensor, None, emb)
        elif "predictions.decoder.bias" in key or key.endswith("predictions.bias"):
            value = tensor.clone()
        elif key.startswith(("classifier.", "qa_outputs.")):
            value = _slice(tensor, None, dims) if tensor.dim() == 2 else tensor.clone()
        else:
            raise KeyError(f"Do not know how to slice {key!r}.")
        out[key] = value
    return out


def extract_subnetwork(
    source: BortPreTrainedModel,
    candidate: Candidate,
    importance: Importance,
    *,
    heterogeneous: bool = False,
    layer_selection: str = "importance",
    model_class: type[BortPreTrainedModel] | None = None,
    init_missing: bool = False,
) -> BortPreTrainedModel:
    """
    A new Bort model of `candidate`'s shape whose every tensor is sliced from `source` (a Bort model, e.g. from
    [`convert_to_bort`]): embeddings and their LayerNorm, Q/K/V/O of the kept heads, the kept FFN neurons, every
    LayerNorm, the pooler and the task head, all restricted to the kept residual dimensions. When nothing is removed
    the outputs equal the source's. The plan is stored on the returned model as `model.ose_plan`.

    `model_class` (default: the source's class) may also be the base `BortModel` of a headed source (the head is
    left out) or a headed class of a headed source; a student tensor with no source counterpart (e.g. a classifier
    extracted from a bare encoder) raises a `ValueError` unless `init_missing=True` asks for random initialisation.

    Example:

    ```python
    >>> import torch
    >>> from hf_bort import BortConfig, BortModel
    >>> from hf_bort.ose import Candidate, compute_importance, extract_subnetwork
    >>> source = BortModel(BortConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                               intermediate_size=37, vocab_size=99)).eval()
    >>> batch = {"input_ids": torch.randint(3, 99, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    >>> scores = compute_importance(source, [batch])
    >>> student = extract_subnetwork(source, Candidate(1, 2, 24, 16, 8), scores)
    >>> student.config.hidden_size, student.config.num_hidden_layers
    (24, 1)
    ```
    """
    if not isinstance(source, BortPreTrainedModel):
        raise TypeError(f"`source` must be a Bort model (see convert_to_bort), got {type(source).__name__}.")
    plan = plan_extraction(
        source.config, candidate, importance, heterogeneous=heterogeneous, layer_selection=layer_selection
    )
    model_class = model_class or type(source)
    student = model_class(plan.config)
    state = _match_prefixes(slice_state_dict(source.state_dict(), plan, source.config), source, student)
    result = student.load_state_dict(state, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [key for key in result.missing_keys if key not in tied]
    if missing and not init_missing:
        raise ValueError(
            f"Extracting a {model_class.__name__} from a {type(source).__name__} leaves {len(missing)} tensors "
            f"without source weights ({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''}): they would be "
            "initialised randomly. Extract the source's own class (or its base model), or pass "
            "init_missing=True to initialise them on purpose."
        )
    if missing:
        logger.warning("Extraction initialised %d tensors randomly on request: %s", len(missing), missing)
    if hasattr(student, "tie_weights"):
        student.tie_weights()
    first = next(source.parameters())
    student.to(dtype=first.dtype, device=first.device)
    student.ose_plan = plan
    return student


def _match_prefixes(state: dict[str, torch.Tensor], source: nn.Module, student: nn.Module) -> dict[str, torch.Tensor]:
    """Renames a sliced state dict between a headed model (`bort.` prefix) and a base model (no prefix)."""
    source_prefix = "" if isinstance(source, BortModel) else "bort."
    student_prefix = "" if isinstance(student, BortModel) else "bort."
    if source_prefix == student_prefix:
        return state
    out = {}
    for key, tensor in state.items():
        if source_prefix:  # headed source -> base student: keep the encoder, drop the head
            if key.startswith(source_prefix):
                out[key[len(source_prefix) :]] = tensor
        else:  # base source -> headed student
            out[student_prefix + key] = tensor
    return out


def save_extracted(
    student: BortPreTrainedModel,
    save_directory: str | os.PathLike,
    tokenizer=None,
    *,
    source: Any = None,
    card: bool = True,
) -> Path:
    """
    Saves an extracted Bort model (code + `auto_map`, loadable with `AutoModel`) with the source's tokenizer and,
    with `card=True`, a `README.md` model card of the extraction from `source` (a path, Hub id or model). Callers
    that train the model further and write their own card pass `card=False`.

    When `source` is a local sentence-transformers folder, the output stays one: its `modules.json`,
    `sentence_bert_config.json`, pooling (with the extracted width as `word_embedding_dimension`), `Dense` (the
    first one after pooling sliced to the kept dimensions) and `Normalize` modules are written around the student,
    which goes where `modules.json` puts the transformer. Modules that cannot follow a narrower width are refused
    with a `ValueError` before anything is written. The student must carry its `ose_plan` (from
    [`extract_subnetwork`]) when its width differs from the source's.
    """
    save_directory = Path(save_directory)
    layout = read_layout(source)
    model_directory = save_directory
    if layout is not None:
        pooling = layout.pooling_config() or {}
        source_width = next(
            (pooling[key] for key in ("word_embedding_dimension", "embedding_dimension") if key in pooling),
            None,
        )
        plan = getattr(student, "ose_plan", None)
        if source_width is None:
            source_width = student.config.hidden_size if plan is None else len(plan.dims)
        if plan is not None:
            kept = list(plan.dims)
        elif student.config.hidden_size == source_width:
            kept = None
        else:
            raise ValueError(
                f"The student's hidden size {student.config.hidden_size} differs from the sentence-transformers "
                f"source's {source_width}, and it carries no `ose_plan` telling which dimensions it kept: save it "
                "from extract_subnetwork's output."
            )
        layout.write(save_directory, hidden_size=source_width, kept_dims=kept)
        model_directory = layout.transformer_output_dir(save_directory)
    student.save_pretrained(model_directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(model_directory)
    else:
        logger.warning("No tokenizer saved beside the extracted model in %s: pass `tokenizer=`.", save_directory)
    if card:
        from ..cards import write_extracted_card

        write_extracted_card(student, save_directory, source)
    return save_directory
