"""
Sentence-transformers folders: read the module layout of a source folder and write it again around a converted or
extracted Bort encoder, so that `SentenceTransformer(output_dir)` builds the same pipeline (pooling, `Dense`,
`Normalize`) instead of silently falling back to mean pooling without normalisation.

The folder is handled as files (`modules.json`, `sentence_bert_config.json`, `config_sentence_transformers.json`,
one sub-folder per module); `sentence-transformers` itself is not needed to write it, only to load it. Loading a
Bort encoder in `SentenceTransformer` works in either of two ways:

- `import hf_bort` first (registers the `bort` type with the Auto classes), then `SentenceTransformer(output_dir)`;
- or, without hf_bort installed, `SentenceTransformer(output_dir, trust_remote_code=True)`: the checkpoint carries
  its modelling code and `auto_map`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

MODULES_FILE = "modules.json"
ST_MODULE_CONFIG = "sentence_bert_config.json"
ST_ROOT_CONFIG = "config_sentence_transformers.json"
# Pooling modes in the order sentence-transformers concatenates them for the legacy boolean keys.
_LEGACY_POOLING_KEYS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_DIMENSION_KEYS = ("word_embedding_dimension", "embedding_dimension")
# Module kinds whose files we rewrite when the hidden width changes; any other kind is then refused.
SLICEABLE_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")


def _kind(entry: dict) -> str:
    """`sentence_transformers.models.Pooling` -> `Pooling`."""
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


@dataclass
class SentenceTransformerLayout:
    """
    The module list of a sentence-transformers folder (`modules.json`) and where its transformer module lives.

    Example:

    ```python
    >>> from hf_bort.assets import packaged_minilm_path
    >>> from hf_bort.models.sentence_transformers_folder import SentenceTransformerLayout
    >>> layout = SentenceTransformerLayout.read(packaged_minilm_path())
    >>> [entry["type"].rsplit(".", 1)[-1] for entry in layout.modules]
    ['Transformer', 'Pooling', 'Normalize']
    ```
    """

    root: Path
    modules: list[dict]
    transformer_index: int

    @classmethod
    def read(cls, path: str | os.PathLike) -> SentenceTransformerLayout | None:
        """The layout of the local folder `path`, or `None` when it is not a sentence-transformers folder."""
        root = Path(path)
        modules_file = root / MODULES_FILE
        if not modules_file.is_file():
            return None
        modules = json.loads(modules_file.read_text())
        if not isinstance(modules, list) or not all(isinstance(m, dict) and "path" in m for m in modules):
            raise ValueError(f"{modules_file} is not a sentence-transformers module list (entries with 'path').")
        transformers_ = [i for i, entry in enumerate(modules) if _kind(entry) == "Transformer"]
        if len(transformers_) != 1:
            raise ValueError(
                f"{modules_file} lists {len(transformers_)} Transformer modules; hf_bort converts folders with "
                "exactly one (the encoder)."
            )
        return cls(root=root, modules=modules, transformer_index=transformers_[0])

    @property
    def transformer_path(self) -> str:
        """The transformer module's folder relative to the root (`""` when the weights sit at the root)."""
        return self.modules[self.transformer_index]["path"]

    @property
    def transformer_dir(self) -> Path:
        return self.root / self.transformer_path if self.transformer_path else self.root

    def pooling_config(self) -> dict | None:
        for entry in self.modules:
            if _kind(entry) == "Pooling":
                return json.loads((self.root / entry["path"] / "config.json").read_text())
        return None

    def write(
        self,
        output_dir: str | os.PathLike,
        *,
        hidden_size: int,
        kept_dims: list[int] | None = None,
    ) -> Path:
        """
        Writes every sentence-transformers file except the transformer's weights and tokenizer into `output_dir`
        (which the caller fills with the Bort checkpoint at [`transformer_output_dir`]) and returns the folder.

        `hidden_size` is the source encoder's width. With `kept_dims` (the residual dimensions an extraction kept,
        in the source's numbering), the pooling config gets the new width and the first `Dense` after pooling has
        its input columns sliced to the pooled dimensions that remain: exact, since each pooling mode maps hidden
        dimension d to pooled dimension d of its block. A `Dense` before pooling or a module of another kind than
        Transformer / Pooling / Dense / Normalize is refused then, before anything is written.
        """
        output_dir = Path(output_dir)
        width_changes = kept_dims is not None and list(kept_dims) != list(range(hidden_size))
        plan = self._plan(hidden_size, kept_dims if width_changes else None)
        output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / MODULES_FILE, output_dir / MODULES_FILE)
        if (self.root / ST_ROOT_CONFIG).is_file():
            shutil.copyfile(self.root / ST_ROOT_CONFIG, output_dir / ST_ROOT_CONFIG)
        module_config = self.transformer_dir / ST_MODULE_CONFIG
        target = self.transformer_output_dir(output_dir)
        target.mkdir(parents=True, exist_ok=True)
        if module_config.is_file():
            shutil.copyfile(module_config, target / ST_MODULE_CONFIG)
        for index, entry in enumerate(self.modules):
            if index == self.transformer_index:
                continue
            source, dest = self.root / entry["path"], output_dir / entry["path"]
            if not entry["path"] or source.resolve() == self.root.resolve():
                raise ValueError(
                    f"Module {entry.get('name')} ({entry.get('type')}) shares the root folder: unsupported."
                )
            if not source.is_dir():  # e.g. Normalize has no files; sentence-transformers builds it from its type
                continue
            shutil.copytree(source, dest, dirs_exist_ok=True)
            action = plan.get(index)
            if action == "pooling":
                _rewrite_pooling(dest, len(kept_dims))
            elif action is not None:
                _slice_dense(dest, action)
        return output_dir

    def transformer_output_dir(self, output_dir: str | os.PathLike) -> Path:
        """Where the transformer module's weights and tokenizer go inside `output_dir` (as modules.json says)."""
        return Path(output_dir) / self.transformer_path if self.transformer_path else Path(output_dir)

    def _plan(self, hidden_size: int, kept_dims: list[int] | None) -> dict[int, object]:
        """Module index -> "pooling" or the Dense input columns to keep; validates before anything is written."""
        if kept_dims is None:
            return {}
        valid = all(0 <= d < hidden_size for d in kept_dims) and len(set(kept_dims)) == len(kept_dims)
        if not kept_dims or not valid:
            raise ValueError(
                f"`kept_dims` must be distinct indices in [0, {hidden_size}), at least one, got {kept_dims!r}."
            )
        plan: dict[int, object] = {}
        columns = None
        for index, entry in enumerate(self.modules):
            kind = _kind(entry)
            if index == self.transformer_index:
                continue
            if kind not in SLICEABLE_MODULES:
                raise ValueError(
                    f"Cannot keep the sentence-transformers module {entry.get('type')!r} when the hidden width "
                    f"changes from {hidden_size} to {len(kept_dims)}: only {', '.join(SLICEABLE_MODULES)} modules "
                    "can be adapted. Keep the hidden width (search_hidden / candidate H = the source's) or drop the "
                    "module."
                )
            if kind == "Pooling":
                config = json.loads((self.root / entry["path"] / "config.json").read_text())
                width = next((config[key] for key in _DIMENSION_KEYS if key in config), None)
                if width != hidden_size:
                    raise ValueError(
                        f"The Pooling module's embedding dimension {width} differs from the encoder's hidden size "
                        f"{hidden_size}: cannot adapt it to the extracted width."
                    )
                columns = pooled_columns(len(pooling_modes(config)), hidden_size, kept_dims)
                plan[index] = "pooling"
            elif kind == "Dense":
                if columns is None:
                    raise ValueError(
                        f"A Dense module ({entry['path']}) before pooling acts on token embeddings of the hidden "
                        "width: hf_bort cannot adapt it to an extracted width. Keep the hidden width."
                    )
                if columns is False:
                    continue  # a later Dense sees the first one's output width, which is unchanged
                config = json.loads((self.root / entry["path"] / "config.json").read_text())
                pooled_width = len(columns) // len(kept_dims) * hidden_size
                if config.get("in_features") != pooled_width:
                    raise ValueError(
                        f"The Dense module in {entry['path']} has in_features {config.get('in_features')}, but "
                        f"pooling outputs {pooled_width} dimensions: cannot slice it consistently."
                    )
                plan[index] = columns
                columns = False
        return plan


def pooling_modes(config: dict) -> list[str]:
    """The pooling modes of a Pooling config (new `pooling_mode` or legacy `pooling_mode_*` keys), in output order."""
    mode = config.get("pooling_mode")
    if mode is not None:
        return [mode] if isinstance(mode, str) else list(mode)
    modes = [name for key, name in _LEGACY_POOLING_KEYS if config.get(key)]
    return modes or ["mean"]


def pooled_columns(n_modes: int, hidden_size: int, kept_dims: list[int]) -> list[int]:
    """Pooled-vector columns that stay when an encoder keeps `kept_dims`: dimension d of each mode's block."""
    return [mode * hidden_size + d for mode in range(n_modes) for d in kept_dims]


def _rewrite_pooling(folder: Path, width: int) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key in _DIMENSION_KEYS:
        if key in config:
            config[key] = width
    path.write_text(json.dumps(config, indent=2) + "\n")


def _slice_dense(folder: Path, columns: list[int]) -> None:
    """Keeps the input `columns` of a Dense module's `linear.weight` (safetensors or PyTorch bin) and its config."""
    index = torch.as_tensor(columns, dtype=torch.long)
    safetensors_file, bin_file = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file, save_file

        state = load_file(safetensors_file)
        state["linear.weight"] = state["linear.weight"].index_select(1, index).contiguous()
        save_file(state, safetensors_file, metadata={"format": "pt"})
    elif bin_file.is_file():
        state = torch.load(bin_file, map_location="cpu", weights_only=True)
        state["linear.weight"] = state["linear.weight"].index_select(1, index).contiguous()
        torch.save(state, bin_file)
    else:
        raise FileNotFoundError(f"No model.safetensors or pytorch_model.bin in the Dense module folder {folder}.")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["in_features"] = len(columns)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def read_layout(source: object) -> SentenceTransformerLayout | None:
    """The layout of `source` when it is a local sentence-transformers folder, else `None` (models, Hub ids)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return SentenceTransformerLayout.read(source)
    return None


def transformer_source(source: object) -> object:
    """The folder holding the encoder's `config.json`: a sentence-transformers module sub-folder, or `source`."""
    layout = read_layout(source)
    return layout.transformer_dir if layout is not None and layout.transformer_path else source


__all__ = ["SentenceTransformerLayout", "pooling_modes", "pooled_columns", "read_layout", "transformer_source"]
