"""
Loading a task model (`AutoModelFor…`) only when the checkpoint holds its head: transformers initialises the weights
a checkpoint lacks at random and only logs it, so a classifier without its classifier tensors would export, serve as a
teacher or be benchmarked with a random head. One rule for every caller (`export`, `bench-compressed`, `compress`).
"""

from __future__ import annotations

import os
from typing import Any


def check_head_loaded(
    model: Any, task: str, missing_keys: list[str], path: Any, *, field: str = "model_or_path", advice: str = ""
) -> None:
    """
    Raises `ValueError` naming the tensors when `missing_keys` (from `from_pretrained(..., output_loading_info=True)`)
    is not empty: the checkpoint `field`=`path` has no trained weights for them. For `feature-extraction` only the
    pooler may be missing (its output is not used). `advice` says what to give instead.
    """
    missing = [key for key in missing_keys if not (task == "feature-extraction" and "pooler." in key)]
    if missing:
        shown = ", ".join(sorted(missing)[:6]) + (", ..." if len(missing) > 6 else "")
        raise ValueError(
            f"task {task!r}: the checkpoint {field}={str(path)!r} has no trained weights for {shown} "
            f"({type(model).__name__} would use them randomly initialised). {advice}".rstrip()
        )


def load_with_head(
    auto_class: Any, path: str | os.PathLike, task: str, *, field: str, advice: str = "", **kwargs: Any
) -> Any:
    """`auto_class.from_pretrained(path, **kwargs)`, refused by [`check_head_loaded`] when the checkpoint lacks
    weights the model needs (its task head)."""
    model, loading_info = auto_class.from_pretrained(path, output_loading_info=True, **kwargs)
    check_head_loaded(model, task, loading_info.get("missing_keys", []), path, field=field, advice=advice)
    return model
