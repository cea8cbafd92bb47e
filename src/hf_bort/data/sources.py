"""Reading the dataset a user gives `compress` into a dict split name -> `datasets.Dataset`: a CSV / JSON / JSONL file,
a folder of split files (or a saved DatasetDict), a DatasetDict, a Dataset, or a Hub dataset name."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .._text import check_utf8

logger = logging.getLogger(__name__)


DATA_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "json"}


SPLIT_ALIASES = {"validation": ("validation", "dev", "valid", "val"), "test": ("test",), "train": ("train",)}


def _load_raw(dataset: Any, seed: int) -> dict[str, Any]:
    """A dict split name -> datasets.Dataset from whatever the user gave."""
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return dict(dataset)
    if isinstance(dataset, datasets.Dataset):
        return {"train": dataset}
    if isinstance(dataset, dict):
        out = {}
        for name, value in dataset.items():
            out[name] = value if isinstance(value, datasets.Dataset) else _load_files({name: value})[name]
        return out
    if not isinstance(dataset, (str, os.PathLike)):
        raise TypeError(
            f"`dataset` must be a path, a Hub dataset name, a DatasetDict or a Dataset, got {type(dataset).__name__}."
        )
    path = Path(dataset)
    if path.is_file():
        return _load_files({"train": path})
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return dict(datasets.load_from_disk(str(path)))
        files: dict[str, Path] = {}
        for split, aliases in SPLIT_ALIASES.items():
            for alias in aliases:
                found = [p for p in sorted(path.iterdir()) if p.stem == alias and p.suffix in DATA_EXTENSIONS]
                if found:
                    files[split] = found[0]
                    break
        extra = [p.name for p in sorted(path.iterdir()) if p.suffix in DATA_EXTENSIONS and p not in files.values()]
        if "train" not in files:
            raise ValueError(
                f"`dataset` folder {path} has no train.csv / train.json / train.jsonl (found: "
                f"{[p.name for p in sorted(path.iterdir())]})."
            )
        if extra:
            logger.warning("Ignoring files of %s that are not a train/validation/test split: %s", path, extra)
        return _load_files(files)
    if str(dataset).startswith((".", "/", "~")) or Path(str(dataset)).suffix in DATA_EXTENSIONS:
        raise FileNotFoundError(f"`dataset` {dataset!r} does not exist.")
    try:
        return dict(datasets.load_dataset(str(dataset)))
    except Exception as error:  # noqa: BLE001 - name the field and the cause (offline, unknown name, ...)
        raise ValueError(
            f"`dataset` {dataset!r} is neither a local file or folder nor a loadable Hub dataset: "
            f"{type(error).__name__}: {error}"
        ) from error


def _load_files(files: dict[str, Any]) -> dict[str, Any]:
    import datasets

    out = {}
    for split, file in files.items():
        file = Path(file)
        if not file.is_file():
            raise FileNotFoundError(f"`dataset` split {split!r}: {file} does not exist.")
        kind = DATA_EXTENSIONS.get(file.suffix)
        if kind is None:
            raise ValueError(f"`dataset` split {split!r}: {file.name} is not .csv, .json or .jsonl.")
        check_utf8(file, f"`dataset` split {split!r}")  # the loaders name neither file nor line
        try:
            out[split] = datasets.load_dataset(kind, data_files=str(file), split="train")
        except Exception as error:  # noqa: BLE001 - an empty or malformed file: name it
            raise ValueError(
                f"`dataset` split {split!r}: {file} could not be read as {kind} ({type(error).__name__}: {error})."
            ) from error
    return out
