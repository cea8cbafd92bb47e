"""
Which class to load a source checkpoint with, decided from the weights it ships rather than from `architectures`.

Many Hub checkpoints name a class whose head they do not carry: sentence-transformers models such as
all-mpnet-base-v2 say `architectures: ["MPNetForMaskedLM"]` but save only the encoder (with its trained pooler).
Loading them with the named class builds a randomly initialised head and drops the pooler. [`source_model_class`]
reads the checkpoint's tensor names (the safetensors header, a shard index, or a memory-mapped PyTorch file; no
weights are read) and decides:

- the class `architectures` names when its head has weights in the checkpoint;
- otherwise the family's base model (`AutoModel`), with a warning naming the file and the missing head;
- for a base model, the pooler is built only when the checkpoint has pooler weights (`add_pooling_layer`).

`convert`, `extract`, `search` and `compress` load sources through [`load_source_model`].
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN_FILE, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS_INDEX, SAFETENSORS_FILE, BIN_INDEX, BIN_FILE)  # in the order transformers prefers


def _find_file(source: str | os.PathLike, name: str, **hub_kwargs) -> Path | None:
    """`name` in the local folder `source`, or in the Hub cache / on the Hub for a repo id; `None` when absent."""
    path = Path(source)
    if path.is_dir():
        return path / name if (path / name).is_file() else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    kwargs = {key: hub_kwargs[key] for key in ("revision", "cache_dir", "token") if hub_kwargs.get(key) is not None}
    cached = try_to_load_from_cache(str(source), name, **{k: v for k, v in kwargs.items() if k != "token"})
    if isinstance(cached, str):
        return Path(cached)
    try:
        return Path(hf_hub_download(str(source), name, **kwargs))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def checkpoint_weight_names(source: str | os.PathLike, **hub_kwargs) -> tuple[set[str], Path]:
    """
    The tensor names of the checkpoint in `source` (a local folder or a Hub id) and the file they were read from:
    a shard index's `weight_map`, a safetensors header, or a memory-mapped `pytorch_model.bin` (tensors not read).
    """
    for name in WEIGHT_FILES:
        found = _find_file(source, name, **hub_kwargs)
        if found is None:
            continue
        if name.endswith(".index.json"):
            index = json.loads(found.read_text())
            if not isinstance(index.get("weight_map"), dict):
                raise ValueError(f"{found} has no `weight_map` object: not a transformers shard index.")
            return set(index["weight_map"]), found
        if name == SAFETENSORS_FILE:
            from safetensors import safe_open

            with safe_open(str(found), framework="pt") as weights:
                return set(weights.keys()), found
        import torch

        state = torch.load(found, map_location="cpu", weights_only=True, mmap=True)
        return set(state), found
    raise FileNotFoundError(
        f"No weights found in {str(source)!r}: expected one of {', '.join(WEIGHT_FILES)} (TensorFlow/Flax-only "
        "checkpoints are not supported)."
    )


@dataclass
class SourceClass:
    """The class to load a checkpoint with, the keyword arguments of its constructor, and why."""

    model_class: type
    init_kwargs: dict = field(default_factory=dict)
    reason: str = ""


def _expected_names(model_class, config) -> set[str]:
    """The state-dict names of `model_class(config)`, built on the meta device (no memory, no initialisation)."""
    import torch

    with torch.device("meta"):
        model = model_class(config)
    return set(model.state_dict())


def source_model_class(config, weight_names: set[str], weights_file: str | os.PathLike = "the checkpoint"):
    """
    Decide the class for a checkpoint with `config` and tensors `weight_names` (see the module docstring).

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from hf_bort.models.source_class import source_model_class
    >>> config = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
    ...                     vocab_size=10, architectures=["BertForMaskedLM"])
    >>> names = {"embeddings.word_embeddings.weight", "pooler.dense.weight", "pooler.dense.bias"}
    >>> choice = source_model_class(config, names)
    >>> choice.model_class.__name__, choice.init_kwargs
    ('BertModel', {'add_pooling_layer': True})
    ```
    """

    architecture = (getattr(config, "architectures", None) or [None])[0]
    named = _named_class(architecture, config)
    base_class = _base_class(config)
    if named is not None and named is not base_class:
        prefix = named.base_model_prefix + "."
        head = {name for name in _expected_names(named, config) if not name.startswith(prefix)}
        head = {name for name in head if not name.endswith(("position_ids", "token_type_ids"))}
        if not head or head & weight_names:
            return SourceClass(named, reason=f"`architectures` names {architecture} and its head has weights")
        if base_class is None:
            raise ValueError(
                f"config.json names {architecture}, but {weights_file} has no weights for its head "
                f"({', '.join(sorted(head)[:4])}…) and no base model class is known for model type "
                f"{config.model_type!r}."
            )
        logger.warning(
            "config.json names %s, but %s has no weights for its head (%s): loading the encoder %s instead of "
            "building a randomly initialised head.",
            architecture,
            weights_file,
            ", ".join(sorted(head)[:4]),
            base_class.__name__,
        )
        reason = f"`architectures` names {architecture}, but its head has no weights in {weights_file}"
    elif named is None and architecture is not None and base_class is None:
        raise ValueError(f"config.json names {architecture!r}, which transformers does not provide.")
    else:
        reason = f"`architectures` names {architecture or 'nothing'}: the base model"
        if base_class is None:
            base_class = named
    init_kwargs = {}
    if "add_pooling_layer" in inspect.signature(base_class.__init__).parameters:
        prefix = base_class.base_model_prefix + "."
        init_kwargs["add_pooling_layer"] = any(
            name.startswith("pooler.") or name.startswith(prefix + "pooler.") for name in weight_names
        )
    return SourceClass(base_class, init_kwargs, reason)


def _named_class(architecture: str | None, config=None):
    """The class `architectures` names: a transformers class, or a class registered with the Auto classes for
    `config`'s type (hf_bort's Bort classes, registered at `import hf_bort`, which a `BortConfig` implies)."""
    import transformers
    from transformers.models.auto import modeling_auto

    if not architecture:
        return None
    found = getattr(transformers, architecture, None)
    if found is not None or config is None:
        return found
    for name in (
        "MODEL_MAPPING",
        "MODEL_FOR_MASKED_LM_MAPPING",
        "MODEL_FOR_PRETRAINING_MAPPING",
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING",
        "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING",
        "MODEL_FOR_QUESTION_ANSWERING_MAPPING",
        "MODEL_FOR_MULTIPLE_CHOICE_MAPPING",
    ):
        mapping = getattr(modeling_auto, name, None)
        try:
            candidate = mapping[type(config)] if mapping is not None else None
        except KeyError:
            continue
        if candidate is not None and candidate.__name__ == architecture:
            return candidate
    return None


def _base_class(config):
    """The class `AutoModel` builds for `config` (the family's encoder), or `None` when it has none."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        return None


def decide_source_class(source: str | os.PathLike, config=None, **kwargs) -> SourceClass:
    """[`source_model_class`] for the checkpoint in the folder or Hub id `source` (config read when not given)."""
    from transformers import AutoConfig

    if config is None:
        config = AutoConfig.from_pretrained(source, **kwargs)
    names, found = checkpoint_weight_names(source, **kwargs)
    return source_model_class(config, names, found.name)


def load_source_model(source: str | os.PathLike, config=None, **kwargs):
    """
    Load the transformers model in the local folder or Hub id `source` with the class [`source_model_class`]
    decides from its weights (`kwargs` go to `from_pretrained`).
    """
    choice = decide_source_class(source, config, **kwargs)
    return choice.model_class.from_pretrained(source, **choice.init_kwargs, **kwargs)


__all__ = ["SourceClass", "checkpoint_weight_names", "decide_source_class", "load_source_model", "source_model_class"]
