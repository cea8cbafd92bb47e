"""How hf_bort's trainers take `args` (trl's convention): `None`, their own config, or a plain `TrainingArguments`."""

from __future__ import annotations

import dataclasses
import os
from typing import TypeVar

from transformers import TrainingArguments

ConfigT = TypeVar("ConfigT", bound=TrainingArguments)


def trainer_config(
    args: TrainingArguments | None, config_class: type[ConfigT], model, suffix: str, **added_fields
) -> ConfigT:
    """
    `args` as a `config_class` (a `TrainingArguments` subclass): `None` gives the default config with the output
    folder `<model name>-<suffix>` (as trl's trainers do); a plain `TrainingArguments` keeps every field it was given,
    and the fields `config_class` adds take `added_fields` or their defaults; a `config_class` is returned as is.
    """
    if isinstance(args, config_class):
        return args
    if args is None:
        name = getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__
        if model is None:  # `model_init` builds the model later
            name = "model"
        return config_class(f"{os.path.basename(os.path.normpath(name))}-{suffix}")
    if isinstance(args, TrainingArguments):
        # The init fields as they are (`to_dict()` would hide the Hub token); `__post_init__` runs again on them.
        given = {field.name: getattr(args, field.name) for field in dataclasses.fields(args) if field.init}
        return config_class(**{**added_fields, **given})
    raise TypeError(
        f"`args` must be a {config_class.__name__}, a transformers TrainingArguments or None, "
        f"got {type(args).__name__}."
    )
