"""
`SearchConfig`: the settings of `hf-bort search` and `hf-bort extract` (HfArgumentParser): the source and its texts,
then one flag per [`OSEConfig`] field (generated from it: same name, help, choices and default, checked by it), and
`--max-cost-ratio`, which on the command line is the budget of the reported `best` (best.json), not a limit on the
candidates searched.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from typing import Any

from .._cli import check_strings
from .config import OSEConfig, check_setting, mirrored_fields, ose_field

# On the command line `--max-cost-ratio` chooses best.json within the budget; OSEConfig.max_cost_ratio (only search
# the candidates within it) is left at None by the CLI (as before: the front covers every candidate).
_CLI_OWN = ("max_cost_ratio",)


def _post_init(self) -> None:
    check_strings(self, "source")
    for name, setting in mirrored_fields(type(self)).items():
        check_setting(setting, getattr(self, name), name)
    self.to_ose_config()  # the checks across settings
    ratio = self.max_cost_ratio
    if ratio is not None and not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and 0 < ratio <= 1):
        raise ValueError(f"--max-cost-ratio must be a number in (0, 1], got {ratio!r}.")


def _to_ose_config(self) -> OSEConfig:
    """The `OSEConfig` of these settings."""
    return OSEConfig(**{setting: getattr(self, name) for name, setting in mirrored_fields(type(self)).items()})


def _to_search(self, text_dataset) -> Any:
    """The `OSESearch` these settings describe, on `text_dataset`."""
    from .search import OSESearch

    return OSESearch(self.source, config=self.to_ose_config(), text_dataset=text_dataset)


def _fields() -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(OSEConfig)
    mirrored = [
        (spec.name, hints[spec.name], ose_field(spec.name))
        for spec in dataclasses.fields(OSEConfig)
        if spec.name not in _CLI_OWN
    ]
    return [
        ("source", str, field(metadata={"help": "Path or Hub id of the source encoder."})),
        (
            "texts",
            str,
            field(
                default="rotten_tomatoes",
                metadata={"help": "rotten_tomatoes, vader, or a text file (one text a line)."},
            ),
        ),
        *mirrored,
        (
            "max_cost_ratio",
            float | None,
            field(
                default=None,
                metadata={"help": "Budget of the reported `best` (best.json), e.g. 0.25 (default: the lowest error)."},
            ),
        ),
    ]


SearchConfig = dataclasses.make_dataclass(
    "SearchConfig",
    _fields(),
    namespace={
        "__post_init__": _post_init,
        "to_ose_config": _to_ose_config,
        "to_search": _to_search,
        "__doc__": (
            "Settings of `hf-bort search` (one flag per field, `--interval-size 4` style; `--config FILE` reads them "
            "from a YAML/JSON file): `source`, `texts`, every `OSEConfig` field (its default, help and check) and "
            "`max_cost_ratio`, the budget of best.json. [`SearchConfig.to_search`] builds the search."
        ),
    },
)
SearchConfig.__module__ = __name__
