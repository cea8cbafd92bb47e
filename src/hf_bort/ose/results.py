"""What the search returns: one record per evaluation and the search result (front, choice, table, plot)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .pareto import pareto_front
from .space import Candidate


@dataclass(frozen=True)
class CandidateResult:
    """One evaluation: a candidate's costs and its error surrogate ê after `steps` distillation steps."""

    candidate: Candidate
    params: int
    encoder_params: int
    multiply_adds: int
    latency_ms: float | None
    error: float
    steps: int
    seed: int
    wall_time: float
    rung: int = 0
    metrics: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Impossible values would win every comparison (a NaN error, a negative cost): refuse them where they enter.
        if not isinstance(self.error, (int, float)) or not math.isfinite(self.error) or self.error < 0:
            raise ValueError(f"`error` of {self.candidate.key} must be a finite number >= 0, got {self.error!r}.")
        for name in ("params", "encoder_params", "multiply_adds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` of {self.candidate.key} must be a positive integer, got {value!r}.")
        if self.latency_ms is not None and (not math.isfinite(self.latency_ms) or self.latency_ms <= 0):
            raise ValueError(f"`latency_ms` of {self.candidate.key} must be > 0, got {self.latency_ms!r}.")

    def objective(self, name: str) -> float:
        if name == "params":
            return float(self.params)
        if name == "error":
            return float(self.error)
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"No {name!r} recorded for {self.candidate.key}: search with cost={name!r}.")
        return float(value)

    def to_record(self, run_id: str) -> dict[str, Any]:
        data = asdict(self)
        data["candidate"] = self.candidate.to_dict()
        return {"run_id": run_id, "key": self.candidate.key, **data}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CandidateResult:
        fields = {name: record[name] for name in cls.__dataclass_fields__ if name not in ("candidate", "metrics")}
        fields["metrics"] = dict(record.get("metrics") or {})
        return cls(candidate=Candidate.from_dict(record["candidate"]), **fields)


@dataclass
class SearchResult:
    """
    What [`OSESearch.run`] returns: every evaluation, the candidates trained to the full budget, and the reference
    costs of the source (the largest point T).
    """

    evaluations: list[CandidateResult]
    max_steps: int
    epsilon: float
    cost: str
    num_candidates: int
    source_params: int
    source_multiply_adds: int
    source_latency_ms: float | None = None
    objective_name: str = "error"
    rungs: list[int] = field(default_factory=list)
    survivors_per_rung: list[int] = field(default_factory=list)

    @property
    def final(self) -> list[CandidateResult]:
        """Candidates evaluated at the full budget `max_steps`, one each."""
        seen: dict[str, CandidateResult] = {}
        for result in self.evaluations:
            if result.steps == self.max_steps:
                seen.setdefault(result.candidate.key, result)
        return sorted(seen.values(), key=lambda r: r.candidate)

    @property
    def fraction_fully_trained(self) -> float:
        return len(self.final) / self.num_candidates

    def objectives(self, result: CandidateResult, names: Sequence[str] | None = None) -> tuple[float, ...]:
        return tuple(result.objective(name) for name in (names or ("params", self.cost, "error")))

    def pareto_front(self, objectives: Sequence[str] | None = None) -> list[CandidateResult]:
        """Fully trained candidates not dominated in (params, cost, error), or in the given `objectives`."""
        final = self.final
        points = [self.objectives(r, objectives) for r in final]
        return sorted((final[i] for i in pareto_front(points)), key=lambda r: r.objective(self.cost))

    def w_coefficient(self, result: CandidateResult, weights: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
        """
        Our W-coefficient (lower is better): w_p·p̂/p̂_T + w_c·ĉ/ĉ_T + w_e·ê/ê_med, where T is the source and ê_med
        the median error on the Pareto front, so each term is about 1 and the weights say how much a unit of each
        relative saving is worth.
        """
        if len(weights) != 3 or any(w < 0 for w in weights):
            raise ValueError(f"`weights` must be three non-negative numbers (params, cost, error), got {weights!r}.")
        front_errors = sorted(r.error for r in self.pareto_front())
        median = front_errors[len(front_errors) // 2] if front_errors else 1.0
        source_cost = self.source_multiply_adds if self.cost == "multiply_adds" else self.source_latency_ms
        return (
            weights[0] * result.params / self.source_params
            + weights[1] * result.objective(self.cost) / source_cost
            + weights[2] * result.error / max(median, 1e-12)
        )

    def best(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        max_cost_ratio: float | None = None,
        max_params_ratio: float | None = None,
    ) -> CandidateResult:
        """
        The front point with the lowest W-coefficient, optionally among those within a budget relative to the
        source (`max_cost_ratio=0.25` keeps points with at most 25% of the source's cost).
        """
        front = self.pareto_front()
        source_cost = self.source_multiply_adds if self.cost == "multiply_adds" else self.source_latency_ms
        if max_cost_ratio is not None:
            front = [r for r in front if r.objective(self.cost) <= max_cost_ratio * source_cost]
        if max_params_ratio is not None:
            front = [r for r in front if r.params <= max_params_ratio * self.source_params]
        if not front:
            raise ValueError("No Pareto-front candidate fits `max_cost_ratio` / `max_params_ratio`.")
        return min(front, key=lambda r: (self.w_coefficient(r, weights), r.candidate))

    def source_cost(self) -> float:
        return float(self.source_multiply_adds if self.cost == "multiply_adds" else self.source_latency_ms)

    def within_budget(
        self,
        results: Sequence[CandidateResult],
        *,
        max_cost_ratio: float | None = None,
        max_params_ratio: float | None = None,
        max_latency_ms: float | None = None,
    ) -> list[CandidateResult]:
        """The `results` within every given budget (ratios to the source; absolute latency needs cost='latency_ms')."""
        out = list(results)
        if max_cost_ratio is not None:
            out = [r for r in out if r.objective(self.cost) <= max_cost_ratio * self.source_cost()]
        if max_params_ratio is not None:
            out = [r for r in out if r.params <= max_params_ratio * self.source_params]
        if max_latency_ms is not None:
            out = [r for r in out if r.objective("latency_ms") <= max_latency_ms]
        return out

    def choose(
        self,
        *,
        max_cost_ratio: float | None = None,
        max_params_ratio: float | None = None,
        max_latency_ms: float | None = None,
    ) -> CandidateResult:
        """
        The lowest-error Pareto-front point within the budget (ties: fewer parameters, lower cost, key). This is what
        `compress` uses; [`best`] weighs the whole front with the W-coefficient instead.
        """
        front = self.within_budget(
            self.pareto_front(),
            max_cost_ratio=max_cost_ratio,
            max_params_ratio=max_params_ratio,
            max_latency_ms=max_latency_ms,
        )
        if not front:
            raise ValueError(
                "No Pareto-front candidate fits the budget (max_cost_ratio="
                f"{max_cost_ratio}, max_params_ratio={max_params_ratio}, max_latency_ms={max_latency_ms})."
            )
        return min(front, key=lambda r: (r.error, r.params, r.objective(self.cost), r.candidate))

    def to_markdown(self, results: Sequence[CandidateResult] | None = None) -> str:
        """A markdown table of the Pareto front (or of `results`)."""
        rows = list(self.pareto_front() if results is None else results)
        lines = [
            "| candidate | D | A | H | I | params (M) | params / T | MACs (M) | MACs / T | latency (ms) | ê | W |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            c = r.candidate
            latency = f"{r.latency_ms:.2f}" if r.latency_ms is not None else "–"
            lines.append(
                f"| {c.key} | {c.num_layers} | {c.num_heads} | {c.hidden_size} | {c.intermediate_size} | "
                f"{r.params / 1e6:.2f} | {r.params / self.source_params:.3f} | {r.multiply_adds / 1e6:.1f} | "
                f"{r.multiply_adds / self.source_multiply_adds:.3f} | {latency} | {r.error:.4f} | "
                f"{self.w_coefficient(r):.3f} |"
            )
        return "\n".join(lines) + "\n"

    def plot(self, path: str | os.PathLike) -> Path:
        """Saves a PNG of error against cost: every fully trained candidate, the Pareto front highlighted."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        final, front = self.final, self.pareto_front()
        figure, axis = plt.subplots(figsize=(7, 4.5))
        axis.scatter(
            [r.objective(self.cost) for r in final],
            [r.error for r in final],
            s=[10 + 40 * r.params / self.source_params for r in final],
            alpha=0.4,
            label="fully trained candidates (size ∝ params)",
        )
        axis.plot(
            [r.objective(self.cost) for r in front], [r.error for r in front], "o-", color="C3", label="Pareto front"
        )
        axis.set_xscale("log")
        axis.set_xlabel("encoder multiply-adds" if self.cost == "multiply_adds" else "latency (ms)")
        axis.set_ylabel(f"ê ({self.objective_name} after {self.max_steps} steps)")
        axis.set_title(f"OSE search, ε = {self.epsilon}, {len(final)}/{self.num_candidates} fully trained")
        axis.legend()
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return path
