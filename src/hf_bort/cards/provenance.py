"""
What a card says about where its model comes from, read from the source rather than guessed.

- [`source_hub_id`]: the source's Hub id — the id itself, a folder of the Hub cache
  (`models--owner--name/snapshots/…`), the packaged all-MiniLM-L6-v2, or the `_name_or_path` recorded in its
  `config.json` when that is a Hub id other than the base model its own card names; `None` (the card then says
  "unknown") otherwise. A local folder name is never taken for a Hub id.
- [`source_card_metadata`]: `license`, `language`, `datasets` and `base_model` from the YAML metadata of the source's
  own `README.md` (the local folder's, or the Hub cache's copy for a Hub id).
- [`framework_versions`]: the versions of the libraries that made the model.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from .data import _HUB_ID, hub_id

logger = logging.getLogger(__name__)

_CACHE_FOLDER = re.compile(r"(?:^|/)models--(?P<owner>[^/]+?)--(?P<name>[^/]+)/snapshots/[^/]+(?:/|$)")
UNKNOWN = "unknown"


def _local_folder(source: Any) -> Path | None:
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return Path(source)
    return None


def _config_folders(folder: Path) -> list[Path]:
    """`folder` and, for a sentence-transformers folder, its encoder's sub-folder."""
    from ..models.sentence_transformers_folder import transformer_source

    inner = Path(transformer_source(folder))
    return [folder] if inner == folder else [folder, inner]


def source_hub_id(source: Any) -> str | None:
    """The Hub id of `source` (a Hub id, a local folder or a model), or `None` when nothing records one."""
    return source_hub_id_and_origin(source)[0]


def source_hub_id_and_origin(source: Any) -> tuple[str | None, str | None]:
    """[`source_hub_id`] and where it was read (`None` for a Hub id given as such)."""
    if source is None:
        return None, None
    if not isinstance(source, (str, os.PathLike)):
        source = getattr(source, "name_or_path", None)
        if not source:
            return None, None
    known = hub_id(source)
    if known is not None:
        return known, None
    folder = _local_folder(source)
    if folder is None:
        return None, None
    match = _CACHE_FOLDER.search(folder.resolve().as_posix())
    if match:
        return f"{match['owner']}/{match['name']}", "the Hub cache folder it was read from"
    # `_name_or_path` is what the weights were loaded from before they were saved: the model itself when it was
    # downloaded and saved again, but the model it was fine-tuned from when it was trained and saved; when the
    # folder's own card names it as its base model, it is the latter and not this model's id.
    own_bases = set(source_card_metadata(folder)["base_model"])
    for inner in _config_folders(folder):
        config_file = inner / "config.json"
        if not config_file.is_file():
            continue
        try:
            recorded = json.loads(config_file.read_text()).get("_name_or_path")
        except (OSError, ValueError):
            continue
        if isinstance(recorded, str) and _HUB_ID.match(recorded) and not os.path.exists(recorded):
            if recorded in own_bases:
                return None, None
            return hub_id(recorded) or recorded, "`_name_or_path` in its config.json"
    return None, None


def _readme(source: Any) -> Path | None:
    folder = _local_folder(source)
    if folder is not None:
        for inner in _config_folders(folder):
            if (inner / "README.md").is_file():
                return inner / "README.md"
        return None
    identifier = source_hub_id(source)
    if identifier is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(identifier, "README.md")
    return Path(cached) if isinstance(cached, str) else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in (value if isinstance(value, (list, tuple)) else [value])]


def source_card_metadata(source: Any) -> dict[str, Any]:
    """`license`, `language`, `datasets`, `base_model` (lists for the last three) of the source's card, and
    `card` (its path) — empty values when the source has no card or the card does not say."""
    readme = _readme(source)
    found: dict[str, Any] = {"card": None, "license": None, "language": [], "datasets": [], "base_model": []}
    if readme is None:
        return found
    from huggingface_hub.repocard import metadata_load

    try:
        metadata = metadata_load(readme) or {}
    except (OSError, ValueError) as error:  # a card whose YAML does not parse: said, not guessed around
        logger.warning("Could not read the metadata of %s: %s", readme, error)
        return found
    found["card"] = str(readme)
    found["license"] = str(metadata["license"]) if metadata.get("license") else None
    found["language"] = _as_list(metadata.get("language"))
    found["datasets"] = _as_list(metadata.get("datasets"))
    found["base_model"] = _as_list(metadata.get("base_model"))
    return found


def framework_versions(*, sentence_transformers: bool = False, onnx: bool = False) -> list[tuple[str, str]]:
    """(library, version) of hf_bort, transformers, PyTorch and, when they were used, sentence-transformers,
    optimum and ONNX Runtime; a library that is not installed is left out."""
    from importlib import metadata

    names = ["hf-bort", "transformers", "torch", "tokenizers", "huggingface-hub"]
    if sentence_transformers:
        names.append("sentence-transformers")
    if onnx:
        names += ["optimum", "optimum-onnx", "onnxruntime"]
    versions = []
    for name in names:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return versions


def complete_provenance(card: Any, folder: Path) -> None:
    """Fill `card`'s base model, licence, languages, source datasets, framework versions and label names from its
    source and its folder (what a field already holds is kept)."""
    source = card.source
    if card.base_model_id is None:
        card.base_model_id, card.base_model_origin = source_hub_id_and_origin(source)
    metadata = source_card_metadata(source) if source is not None else source_card_metadata(None)
    if card.base_model_id is None and card.kind == "onnx" and len(metadata["base_model"]) == 1:
        card.base_model_id = metadata["base_model"][0]  # the same model in another format: the same base
    card.source_card = metadata["card"] is not None
    card.license = card.license or metadata["license"]
    card.language = card.language or metadata["language"]
    card.source_datasets = card.source_datasets or metadata["datasets"]
    if not card.framework_versions:
        card.framework_versions = framework_versions(
            sentence_transformers=card.sentence_transformers, onnx=bool(card.onnx_files)
        )
    if not card.labels:
        config_file = folder / (card.onnx_subfolder or "") / "config.json"
        if not config_file.is_file():
            config_file = folder / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        id2label = config.get("id2label") or {}
        if card.pipeline_tag in ("text-classification", "token-classification") and id2label:
            card.labels = [str(id2label[key]) for key in sorted(id2label, key=int)]


__all__ = [
    "UNKNOWN",
    "complete_provenance",
    "framework_versions",
    "source_card_metadata",
    "source_hub_id",
    "source_hub_id_and_origin",
]
