"""Model sources given by the user (a local model folder or a Hub id), checked before anything is loaded.

transformers answers a path that does not exist, a file, or a folder without `config.json` with
"We couldn't connect to 'https://huggingface.co' … check your internet connection" when the Hub is offline, which
sends the user looking in the wrong place. [`check_source`] says what is wrong with the path instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("TRANSFORMERS_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(flag.upper() in ("1", "ON", "YES", "TRUE") for flag in flags)


def _is_repo_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _sentence_transformers_encoder(path: Path) -> bool:
    """A sentence-transformers folder whose `modules.json` puts the encoder (with its config.json) in a sub-folder."""
    from .models.sentence_transformers_folder import transformer_source

    inner = Path(transformer_source(path))
    return inner != path and (inner / "config.json").is_file()


def check_source(source: object, field: str = "source") -> None:
    """
    Raise an error naming `field` when `source` (a path or a Hub id) cannot be a model: an existing file, a folder
    without `config.json`, a path that does not exist (anything that cannot be a Hub id, such as `/abs/path`,
    `./rel` or `a/b/c`), or a Hub id that is not in the local cache while the Hub is offline (`HF_HUB_OFFLINE=1`).
    Model instances and configs pass unchecked.

    Example:

    ```python
    >>> from hf_bort._sources import check_source
    >>> check_source("/no/such/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: source '/no/such/model' does not exist: give a model folder (with config.json) or a Hub id.
    ```
    """
    if not isinstance(source, (str, os.PathLike)):
        return
    path, text = Path(source), os.fspath(source)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{field} {text!r} is a file, not a model folder (a folder with config.json).")
        if not (path / "config.json").is_file() and not _sentence_transformers_encoder(path):
            raise ValueError(f"{field} {text!r} is a folder but not a model folder: it has no config.json.")
        return
    if not _is_repo_id(text):
        raise FileNotFoundError(
            f"{field} {text!r} does not exist: give a model folder (with config.json) or a Hub id."
        )
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(text, "config.json"), str):
            raise FileNotFoundError(
                f"{field} {text!r} is not an existing folder, and not a Hub model in the local cache while the Hub "
                "is offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE): give a model folder (with config.json)."
            )
