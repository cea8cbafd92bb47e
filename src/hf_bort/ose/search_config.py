"""`SearchConfig`: the settings of `hf-bort search` (HfArgumentParser), with `OSESearch`'s defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .._cli import api_default, check_strings
from .search import OSESearch


def _default(name: str):
    return api_default(OSESearch, name)


@dataclass
class SearchConfig:
    """
    Settings of `hf-bort search` (one flag per field, `--interval-size 4` style; `--config FILE` reads them from a
    YAML/JSON file). The defaults are [`OSESearch`]'s, read from its signature; [`SearchConfig.to_search`] builds the
    search, so the Python keyword API (`OSESearch(source, space, epsilon=..., ...)`) stays the reference.
    """

    source: str = field(metadata={"help": "Path or Hub id of the source encoder."})
    texts: str = field(
        default="rotten_tomatoes", metadata={"help": "rotten_tomatoes, vader, or a text file (one text a line)."}
    )
    output_dir: str = field(
        default=_default("output_dir"), metadata={"help": "Where candidates.jsonl, front.md/png and best.json go."}
    )
    epsilon: float = field(default=_default("epsilon"), metadata={"help": "Approximation ε (smaller: more steps)."})
    interval_size: int = field(
        default=_default("interval_size"), metadata={"help": "Steps of the first interval (default: OSESearch's)."}
    )
    cost: str = field(
        default=_default("cost"),
        metadata={"help": "Cost axis of the front.", "choices": ["multiply_adds", "latency_ms"]},
    )
    sequence_length: int = field(
        default=_default("sequence_length"),
        metadata={"help": "Tokens per input at which multiply-adds are counted and latency is timed."},
    )
    layers: str = field(
        default=None, metadata={"help": "Comma-separated depths (default: paper grid scaled to the source)."}
    )
    heads: str = field(default=None, metadata={"help": "Comma-separated head counts (default: scaled grid)."})
    hidden: str = field(default=None, metadata={"help": "Comma-separated hidden widths (default: scaled grid)."})
    intermediate: str = field(default=None, metadata={"help": "Comma-separated FFN widths (default: scaled grid)."})
    heterogeneous: bool = field(
        default=_default("heterogeneous"), metadata={"help": "Per-layer head / neuron counts."}
    )
    seed: int = field(default=_default("seed"), metadata={"help": "Seed of candidate training and sampling."})
    max_cost_ratio: float = field(
        default=None,
        metadata={"help": "Budget of the reported `best` (best.json), e.g. 0.25 (default: the lowest error)."},
    )

    def __post_init__(self) -> None:
        check_strings(self, "source")
        ratio = self.max_cost_ratio
        if ratio is not None and not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and 0 < ratio <= 1):
            raise ValueError(f"--max-cost-ratio must be a number in (0, 1], got {ratio!r}.")

    def to_search(self, text_dataset) -> OSESearch:
        """The `OSESearch` these settings describe, on `text_dataset`."""
        from .space import SearchSpace

        def ints(text):
            return tuple(int(part) for part in text.split(",")) if text else None

        space = SearchSpace.from_source(
            self.source,
            num_layers=ints(self.layers),
            num_heads=ints(self.heads),
            hidden_sizes=ints(self.hidden),
            intermediate_sizes=ints(self.intermediate),
        )
        return OSESearch(
            self.source,
            space,
            epsilon=self.epsilon,
            interval_size=self.interval_size,
            text_dataset=text_dataset,
            output_dir=self.output_dir,
            cost=self.cost,
            sequence_length=self.sequence_length,
            seed=self.seed,
            heterogeneous=self.heterogeneous,
        )
