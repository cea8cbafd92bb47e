"""
`OSEConfig`: every setting of an OSE search, defined once (type, default, help, check), peft-style. It is taken by
[`OSESearch`] (its keyword arguments build one), parsed by `hf-bort search` / `hf-bort extract` (one flag per field),
and its fields back `CompressionConfig`'s search settings (`search_*`, see [`ose_field`]).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..measure.engines import SEARCH_ENGINES

CONFIG_NAME = "ose_config.json"
# The values of the choice settings, defined here once (the tuples are what the other modules check against).
Objective = Literal["auto", "task", "mlm", "hidden", "embedding"]
Cost = Literal["multiply_adds", "latency_ms"]
Engine = Literal[SEARCH_ENGINES]  # the engine names are hf_bort.measure's
ImportanceMethod = Literal["activation", "gradient"]
LayerSelection = Literal["importance", "first", "uniform"]
SEARCH_OBJECTIVES = typing.get_args(Objective)
COSTS = typing.get_args(Cost)
ENGINES = typing.get_args(Engine)
IMPORTANCE_METHODS = typing.get_args(ImportanceMethod)
LAYER_SELECTIONS = typing.get_args(LayerSelection)

# Checks, by the `check` entry of a field's metadata (a `Literal` field is checked against its values).
_RULES = {
    "positive_int": "a positive integer",
    "positive_int_or_none": "a positive integer or None",
    "positive": "a finite number > 0",
    "positive_or_none": "a finite number > 0 or None",
    "non_negative": "a finite number >= 0",
    "integer": "an integer",
    "unit_interval": "a number in (0, 1]",
    "fraction": "a number in [0, 1]",
    "bool": "True or False",
    "string": "a non-empty string",
    "string_or_none": "a non-empty string or None",
    "path": "a non-empty path",
    "path_or_none": "a path or None",
    "axis": "comma-separated positive integers",
}


# What a field's metadata cannot hold (HfArgumentParser passes every metadata entry to argparse): its check, its
# run-id key and the OSEConfig field it mirrors, by field object (dataclasses keep the objects: `fields(cls)`).
_EXTRA: dict[int, tuple[dataclasses.Field, dict[str, str]]] = {}


def _extra(spec: dataclasses.Field) -> dict[str, str]:
    entry = _EXTRA.get(id(spec))
    return entry[1] if entry is not None and entry[0] is spec else {}


def _with_extra(spec: dataclasses.Field, **extra: str | None) -> Any:
    _EXTRA[id(spec)] = (spec, {key: value for key, value in extra.items() if value is not None})
    return spec


def _setting(default: Any, help: str, check: str | None = None, run_id: str | None = None) -> Any:
    """A field of `OSEConfig`: `help` for the CLI, `check` its rule, `run_id` its key in the search's run id."""
    return _with_extra(field(default=default, metadata={"help": help}), check=check, run_id=run_id)


@dataclass
class OSEConfig:
    """
    Settings of an [`OSESearch`] (its data, source and space are arguments of the search, not settings). Every
    field is checked in `__post_init__` with an error naming it; `save_pretrained` / `from_pretrained` write and read
    `ose_config.json`; the fields that change results make up the search's run id ([`run_id_settings`]).

    Example:

    ```python
    >>> from hf_bort.ose import OSEConfig
    >>> config = OSEConfig(epsilon=0.2, layers="2,4")
    >>> config.max_steps_total
    20
    ```
    """

    # ---------------------------------------------------------------------------------------------- the algorithm
    epsilon: float = _setting(0.1, "Approximation ε (smaller: more steps).", "unit_interval")
    interval_size: int | None = _setting(
        None, "Steps of the first interval (default: an eighth of the full budget).", "positive_int_or_none"
    )
    base_steps: int = _setting(4, "Steps per candidate at ε = 1 (the full budget is ceil(this / ε)).", "positive_int")
    max_steps: int | None = _setting(
        None, "Full training budget per candidate (default: ceil(base_steps / ε)).", "positive_int_or_none"
    )
    prune: bool = _setting(True, "Prune after each interval (False: train every candidate fully).", "bool")
    objective: Objective = _setting(
        "auto",
        "Surrogate ê: 'task' (labelled rows), 'mlm', 'hidden', 'embedding' (a sentence-embedding head); 'auto' picks.",
    )
    output_dir: str = _setting(
        "ose-run", "Where candidates.jsonl, front.md/png and best.json go (and the search's states).", "path"
    )
    seed: int = _setting(0, "Seed of candidate training and sampling.", "integer", "seed")
    # ------------------------------------------------------------------------------------------- the search space
    layers: str | None = _setting(None, "Comma-separated depths (default: paper grid scaled to the source).", "axis")
    heads: str | None = _setting(None, "Comma-separated head counts (default: scaled grid).", "axis")
    hidden: str | None = _setting(None, "Comma-separated hidden widths (default: scaled grid).", "axis")
    intermediate: str | None = _setting(None, "Comma-separated FFN widths (default: scaled grid).", "axis")
    heterogeneous: bool = _setting(False, "Per-layer head / neuron counts.", "bool", "heterogeneous")
    # ------------------------------------------------------------------------------------ candidate training (ê)
    batch_size: int = _setting(8, "Batch size of candidate training.", "positive_int", "batch_size")
    eval_batch_size: int | None = _setting(
        None, "Batch size of ê's evaluation (default: batch_size).", "positive_int_or_none"
    )
    max_length: int = _setting(64, "Tokens per text in candidate training.", "positive_int", "max_length")
    num_eval_batches: int = _setting(4, "Held-out batches ê is measured on.", "positive_int", "num_eval_batches")
    max_train_batches: int = _setting(64, "Distinct training batches (cycled).", "positive_int")
    learning_rate: float = _setting(1e-4, "Constant learning rate of candidate training.", "positive", "lr")
    temperature: float = _setting(2.0, "Softmax temperature T of the KL terms.", "positive", "temperature")
    alpha_ce: float = _setting(0.5, "Weight of the label cross-entropy (task objective).", "non_negative", "alpha_ce")
    alpha_kd: float = _setting(0.5, "Weight of T²·KL to the teacher (task objective).", "non_negative", "alpha_kd")
    gold_weight: float = _setting(
        0.0,
        "Weight w of the gold dev labels in the task objective's ê = (1 - w)·KL(teacher ‖ student) + w·CE(gold): "
        "> 0 when the teacher is weak, so that copying it is not rewarded.",
        "fraction",
    )  # in the run id only when > 0 (OSESearch._run_id): runs without it keep their ids
    freeze_embeddings: bool = _setting(True, "Keep the candidates' embeddings frozen.", "bool", "freeze_embeddings")
    text_column: str = _setting("text", "Column holding the text.", "string")
    text_pair_column: str | None = _setting(
        None,
        "Column holding the second text of a pair (task objective; cross-encoders): rows are tokenised as "
        "(text, text_pair). Default: single texts.",
        "string_or_none",
    )
    label_column: str = _setting("label", "Column holding the label (task objective).", "string")
    # ------------------------------------------------------------------------------------------------ extraction
    importance_method: ImportanceMethod = _setting(
        "activation", "How heads, neurons and dims are ranked.", run_id="importance"
    )
    calibration_batches: int = _setting(
        8, "Training batches importance is computed on.", "positive_int", "calibration_batches"
    )
    layer_selection: LayerSelection = _setting(
        "importance", "Which source layers a shallower candidate keeps.", run_id="layer_selection"
    )
    allow_random_init: bool = _setting(
        False, "Search a source without a weight mapping to Bort from random weights, on purpose.", "bool"
    )
    # ----------------------------------------------------------------------------------------- costs and budgets
    cost: Cost = _setting("multiply_adds", "Cost axis of the front.", run_id="cost")
    sequence_length: int = _setting(
        128,
        "Tokens per input at which multiply-adds are counted and latency is timed.",
        "positive_int",
        "sequence_length",
    )
    latency_batch_size: int = _setting(1, "Batch size latency is timed at.", "positive_int")
    latency_engine: Engine = _setting("pytorch", "Engine latency is timed with.")
    latency_cache: str | None = _setting(
        None, "Per-device latency cache file (default: OUTPUT_DIR/latency.json).", "path_or_none"
    )
    max_cost_ratio: float | None = _setting(
        None, "Search only candidates within this fraction of the source's cost.", "positive_or_none"
    )
    max_multiply_adds_ratio: float | None = _setting(
        None, "Search only candidates within this fraction of the source's multiply-adds.", "positive_or_none"
    )
    max_latency_ms: float | None = _setting(
        None, "Search only candidates faster than this (needs cost='latency_ms').", "positive_or_none"
    )
    show_progress: bool = _setting(True, "Progress bars.", "bool")

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            check_setting(spec.name, getattr(self, spec.name))
        for name in ("output_dir", "latency_cache"):  # paths are kept as strings (JSON, the run's settings)
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        if self.text_pair_column is not None and self.text_pair_column in (self.text_column, self.label_column):
            raise ValueError(
                f"`text_pair_column` {self.text_pair_column!r} must differ from the text and label columns."
            )
        if self.max_latency_ms is not None and self.cost != "latency_ms":
            raise ValueError("`max_latency_ms` needs cost='latency_ms' (latencies are only measured then).")

    # ---------------------------------------------------------------------------------------------- derived values
    @property
    def max_steps_total(self) -> int:
        """Training steps per fully trained candidate: `max_steps`, or ceil(base_steps / ε)."""
        return self.max_steps or math.ceil(self.base_steps / self.epsilon)

    def axis(self, name: str) -> tuple[int, ...] | None:
        """A search-space axis (`layers`, `heads`, `hidden`, `intermediate`) as integers; None: the scaled grid."""
        return parse_axis(getattr(self, name), name)

    def run_id_settings(self) -> dict[str, Any]:
        """The settings that change a search's results, under their run-id keys (from `asdict`)."""
        values = asdict(self)
        return {
            _extra(spec)["run_id"]: values[spec.name] for spec in dataclasses.fields(self) if "run_id" in _extra(spec)
        }

    # ----------------------------------------------------------------------------------------------- save / load
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Writes `ose_config.json` in `save_directory` (created), atomically."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> OSEConfig:
        """Reads `ose_config.json` from a folder (or the file itself); `overrides` replace saved values."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object of OSEConfig settings.")
        known = {spec.name for spec in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown OSEConfig settings {unknown}.")
        return cls(**{**values, **overrides})


def parse_axis(value: Any, name: str) -> tuple[int, ...] | None:
    """A search-space axis given as 'a,b,c' or a sequence of integers; None stays None. Errors name `name`."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [part.strip() for part in str(value).split(",") if part.strip()]
    try:
        numbers = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be comma-separated positive integers, got {value!r}.") from None
    if not numbers or any(n <= 0 for n in numbers):
        raise ValueError(f"`{name}` must be comma-separated positive integers, got {value!r}.")
    return numbers


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


_CHECKS = {
    "positive_int": _positive_int,
    "positive_int_or_none": lambda v: v is None or _positive_int(v),
    "positive": lambda v: _number(v) and v > 0,
    "positive_or_none": lambda v: v is None or (_number(v) and v > 0),
    "non_negative": lambda v: _number(v) and v >= 0,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "unit_interval": lambda v: _number(v) and 0 < v <= 1,
    "fraction": lambda v: _number(v) and 0 <= v <= 1,
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str) and bool(v.strip()),
    "string_or_none": lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
    "path": lambda v: isinstance(v, (str, os.PathLike)) and bool(str(v).strip()),
    "path_or_none": lambda v: v is None or (isinstance(v, (str, os.PathLike)) and bool(str(v).strip())),
}


def check_setting(name: str, value: Any, label: str | None = None) -> None:
    """
    Checks `value` for the `OSEConfig` field `name` (its `Literal` values or its metadata's rule); the error names
    `label` (default: `name`), e.g. `search_interval` when `CompressionConfig` checks its copy of `interval_size`.
    """
    label = label or name
    spec = _FIELDS[name]
    choices = _literal_choices(name)
    if choices is not None:
        if value not in choices:
            raise ValueError(f"`{label}` must be one of {choices}, got {value!r}.")
        return
    rule = _extra(spec).get("check")
    if rule == "axis":
        parse_axis(value, label)
    elif rule is not None and not _CHECKS[rule](value):
        raise ValueError(f"`{label}` must be {_RULES[rule]}, got {value!r}.")


def _literal_choices(name: str) -> tuple[str, ...] | None:
    hint = _HINTS[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def ose_field(name: str, **overrides: Any) -> Any:
    """
    A dataclass field that mirrors the `OSEConfig` field `name` in another settings class (e.g.
    `CompressionConfig.search_interval = ose_field("interval_size", default=16)`): its help (and choices) come from
    `OSEConfig`, and [`mirrored_fields`] maps it back to `name`, so that the class checks it with [`check_setting`]
    and builds its `OSEConfig` from it. `default` may be overridden (the other class's own default); `help` is added
    to OSEConfig's.
    """
    spec = _FIELDS[name]
    help_text = spec.metadata["help"]
    if overrides.get("default", spec.default) is not spec.default:  # OSEConfig's "(default: …)" is not this one's
        help_text = _without_default_note(help_text)
    if "help" in overrides:
        help_text = f"{help_text} {overrides.pop('help')}"
    metadata: dict[str, Any] = {"help": help_text}
    choices = _literal_choices(name)
    if choices is not None:
        metadata["choices"] = list(choices)
    default = overrides.pop("default", spec.default)
    if overrides:
        raise TypeError(f"ose_field takes `default` and `help` only, got {sorted(overrides)}.")
    return _with_extra(field(default=default, metadata=metadata), ose=name)


def _without_default_note(text: str) -> str:
    """`text` without its "(default: …)" note (nested parentheses included)."""
    start = text.find(" (default:")
    if start < 0:
        return text
    depth, end = 0, start + 1
    for end in range(start + 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    return text[:start] + text[end + 1 :]


def mirrored_fields(settings_class: type) -> dict[str, str]:
    """{field of `settings_class`: the OSEConfig field it mirrors} for the fields made with [`ose_field`]."""
    return {spec.name: _extra(spec)["ose"] for spec in dataclasses.fields(settings_class) if "ose" in _extra(spec)}


_FIELDS = {spec.name: spec for spec in dataclasses.fields(OSEConfig)}
_HINTS = typing.get_type_hints(OSEConfig)
