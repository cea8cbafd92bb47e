"""The OSE search space: candidate architectures ⟨D layers, A heads, H hidden, I intermediate⟩ and their validity."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# The Bort paper's grid for BERT-large sources (300 valid points once H % A != 0 is dropped).
PAPER_BERT_GRID: dict[str, tuple[int, ...]] = {
    "num_layers": (2, 4, 6, 8, 10, 12),
    "num_heads": (4, 8, 12, 16),
    "hidden_sizes": (512, 768, 1024),
    "intermediate_sizes": (256, 512, 768, 1024, 3072),
}
# The same grid as fractions of its maxima, used to scale it to any source.
_PAPER_FRACTIONS = {name: tuple(v / max(values) for v in values) for name, values in PAPER_BERT_GRID.items()}


@dataclass(frozen=True, order=True)
class Candidate:
    """One architecture ξ = ⟨D, A, H, I⟩ with its head width (A heads of `head_size` each, inner width A·head_size)."""

    num_layers: int
    num_heads: int
    hidden_size: int
    intermediate_size: int
    head_size: int

    @property
    def key(self) -> str:
        """A stable, human-readable identifier, e.g. `D4-A8-H768-I1024-d64`."""
        return f"D{self.num_layers}-A{self.num_heads}-H{self.hidden_size}-I{self.intermediate_size}-d{self.head_size}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})

    @classmethod
    def from_key(cls, key: str) -> Candidate:
        try:
            parts = dict((part[0], int(part[1:])) for part in key.split("-"))
            return cls(parts["D"], parts["A"], parts["H"], parts["I"], parts["d"])
        except (KeyError, ValueError, IndexError) as error:
            raise ValueError(f"`key` {key!r} is not a candidate key like 'D4-A8-H768-I1024-d64'.") from error


def _check_values(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, int):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"`{name}` must be a non-empty sequence of positive integers, got {values!r}.") from None
    if not values:
        raise ValueError(f"`{name}` must be a non-empty sequence of positive integers, got an empty one.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must contain positive integers only, got {value!r}.")
    return tuple(sorted(set(values)))


@dataclass
class SearchSpace:
    """
    A grid Ξ of candidate architectures. Every combination of the four value lists is a candidate; points that cannot
    be built (or cannot inherit weights from the source) are dropped and the reasons are counted in `dropped`.

    Args:
        num_layers: depths D.
        num_heads: attention heads A per layer.
        hidden_sizes: residual widths H.
        intermediate_sizes: FFN widths I.
        head_size: width of one head. `None` (the paper's grid) means H / A, and points where A does not divide H are
            dropped; an int (the default for spaces derived from a source) keeps the source's head width, so heads
            can be removed without changing H (Bort's `attention_head_size`).
        max_layers, max_heads, max_hidden, max_intermediate: the source's shape; larger values cannot inherit
            weights by extraction and are dropped. `None` means unbounded.

    Example:

    ```python
    >>> from hf_bort import SearchSpace
    >>> space = SearchSpace.paper_bert()
    >>> len(space), dict(space.dropped)
    (300, {'hidden_size % num_heads != 0': 60})
    ```
    """

    num_layers: tuple[int, ...]
    num_heads: tuple[int, ...]
    hidden_sizes: tuple[int, ...]
    intermediate_sizes: tuple[int, ...]
    head_size: int | None = None
    max_layers: int | None = None
    max_heads: int | None = None
    max_hidden: int | None = None
    max_intermediate: int | None = None
    dropped: Counter = field(default_factory=Counter, init=False, compare=False)

    def __post_init__(self) -> None:
        self.num_layers = _check_values("num_layers", self.num_layers)
        self.num_heads = _check_values("num_heads", self.num_heads)
        self.hidden_sizes = _check_values("hidden_sizes", self.hidden_sizes)
        self.intermediate_sizes = _check_values("intermediate_sizes", self.intermediate_sizes)
        for name in ("head_size", "max_layers", "max_heads", "max_hidden", "max_intermediate"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
        self._candidates = self._enumerate()
        if not self._candidates:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.dropped.items()))
            raise ValueError(f"The search space is empty: every point was dropped ({reasons}).")

    def _enumerate(self) -> list[Candidate]:
        self.dropped = Counter()
        out = []
        for depth, heads, hidden, inner in itertools.product(
            self.num_layers, self.num_heads, self.hidden_sizes, self.intermediate_sizes
        ):
            reason = self._invalid_reason(depth, heads, hidden, inner)
            if reason is not None:
                self.dropped[reason] += 1
                continue
            out.append(Candidate(depth, heads, hidden, inner, self.head_size or hidden // heads))
        return out

    def _invalid_reason(self, depth: int, heads: int, hidden: int, inner: int) -> str | None:
        for value, bound, name in (
            (depth, self.max_layers, "num_layers"),
            (heads, self.max_heads, "num_heads"),
            (hidden, self.max_hidden, "hidden_size"),
            (inner, self.max_intermediate, "intermediate_size"),
        ):
            if bound is not None and value > bound:
                return f"{name} > source's {bound}"
        if self.head_size is None and hidden % heads != 0:
            return "hidden_size % num_heads != 0"
        return None

    def candidates(self) -> list[Candidate]:
        """The valid candidates, sorted by (D, A, H, I)."""
        return list(self._candidates)

    def __len__(self) -> int:
        return len(self._candidates)

    def __iter__(self):
        return iter(self._candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_layers": list(self.num_layers),
            "num_heads": list(self.num_heads),
            "hidden_sizes": list(self.hidden_sizes),
            "intermediate_sizes": list(self.intermediate_sizes),
            "head_size": self.head_size,
            "max_layers": self.max_layers,
            "max_heads": self.max_heads,
            "max_hidden": self.max_hidden,
            "max_intermediate": self.max_intermediate,
        }

    @classmethod
    def paper_bert(cls) -> SearchSpace:
        """The Bort paper's grid for BERT: D∈{2,…,12}, A∈{4,8,12,16}, H∈{512,768,1024}, I∈{256,…,3072}, H/A heads."""
        return cls(**PAPER_BERT_GRID)

    @classmethod
    def from_source(
        cls,
        source: Any,
        *,
        num_layers: tuple[int, ...] | None = None,
        num_heads: tuple[int, ...] | None = None,
        hidden_sizes: tuple[int, ...] | None = None,
        intermediate_sizes: tuple[int, ...] | None = None,
    ) -> SearchSpace:
        """
        The paper's grid scaled to `source` (a config, a model, or a path any `AutoConfig` loads): each axis takes the
        paper's values as fractions of the paper's maximum times the source's value (rounded, at least 1, duplicates
        merged), e.g. for MiniLM-L6 (6 layers, 12 heads, width 384, FFN 1536) D∈{1,…,6}, A∈{3,6,9,12},
        H∈{192,288,384}, I∈{128,256,384,512,1536}. Heads keep the source's head width so every point can inherit
        weights by extraction. Any axis can be overridden.
        """
        from ..models.bort.convert import check_encoder_config

        config = source_config(source)
        check_encoder_config(config, "The OSE search")  # GPT-2, T5…: refused here, not deep inside
        depth = config.num_hidden_layers
        heads = (
            config.num_attention_heads
            if isinstance(config.num_attention_heads, int)
            else max(config.num_attention_heads)
        )
        hidden = config.hidden_size
        inner = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
        inner = inner if isinstance(inner, int) else max(inner)
        head_size = getattr(config, "attention_head_size", None) or hidden // heads

        def scaled(name: str, top: int) -> tuple[int, ...]:
            return tuple(sorted({max(1, round(fraction * top)) for fraction in _PAPER_FRACTIONS[name]}))

        return cls(
            num_layers=num_layers or scaled("num_layers", depth),
            num_heads=num_heads or scaled("num_heads", heads),
            hidden_sizes=hidden_sizes or scaled("hidden_sizes", hidden),
            intermediate_sizes=intermediate_sizes or scaled("intermediate_sizes", inner),
            head_size=head_size,
            max_layers=depth,
            max_heads=heads,
            max_hidden=hidden,
            max_intermediate=inner,
        )


def source_config(source: Any):
    """The config of `source`: a config, a model, or a path / Hub id `AutoConfig` loads (a sentence-transformers
    folder: its transformer module's)."""
    from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

    if isinstance(source, PretrainedConfig):
        return source
    if isinstance(source, PreTrainedModel):
        return source.config
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        from .._sources import check_source
        from ..models.sentence_transformers_folder import transformer_source

        check_source(source)
        return AutoConfig.from_pretrained(transformer_source(source))
    raise TypeError(f"`source` must be a config, a model or a path, got {type(source).__name__}.")
