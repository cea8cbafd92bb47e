"""
The cost side of an [`OSESearch`]: the source's costs, candidate latencies (timed once per shape into the latency
cache) and the candidates within the budget (`max_cost_ratio`, `max_multiply_adds_ratio`, `max_latency_ms`).
"""

from __future__ import annotations

from typing import Any

import torch

from .costs import LatencyCache, candidate_config, candidate_costs
from .distributed import rank_world
from .space import Candidate


class SearchBudget:
    """The budget side of [`hf_bort.ose.search.OSESearch`] (a base class of it; reads the search's settings)."""

    def source_costs(self) -> tuple[int, int, float | None]:
        self._prepare()
        config = self.base_config
        full = Candidate(
            config.num_hidden_layers,
            max(config.layer_num_attention_heads),
            config.hidden_size,
            max(config.layer_intermediate_sizes),
            config.attention_head_size,
        )
        costs = candidate_costs(full, config, self.sequence_length)
        latency = None
        if self.cost == "latency_ms":
            latency = self._latency(full)
        return costs.params, costs.multiply_adds, latency

    def _latency_cache(self) -> LatencyCache:
        if not hasattr(self, "_latency_store"):
            self._latency_store = LatencyCache(self.latency_cache)
        return self._latency_store

    def _latency(self, candidate: Candidate) -> float:
        config = candidate_config(candidate, self.base_config)
        return self._latency_cache().measure(
            config,
            batch_size=self.latency_batch_size,
            sequence_length=self.sequence_length,
            engine=self.latency_engine,
        )

    def candidates_within_budget(self) -> tuple[list[Candidate], dict[str, Any]]:
        """
        The space's candidates within `max_cost_ratio` (of the source's cost) and `max_latency_ms`, with their costs
        and latencies. Raises before any training when none fits.
        """
        self._prepare()
        candidates = self.space.candidates()
        costs = {c.key: candidate_costs(c, self.base_config, self.sequence_length) for c in candidates}
        latencies: dict[str, float | None] = dict.fromkeys(costs)
        rank, world = rank_world()
        if self.cost == "latency_ms":
            if rank == 0:
                from tqdm.auto import tqdm

                bar = tqdm(candidates, desc="OSE latency", disable=not self.show_progress)
                with self._latency_cache().lock():  # no other process times shapes into this cache meanwhile
                    latencies = {c.key: self._latency(c) for c in bar}
            if world > 1:
                box = [latencies]
                torch.distributed.broadcast_object_list(box, src=0)
                latencies = box[0]
        source_params, source_macs, source_latency = self.source_costs()

        def cost_of(candidate: Candidate) -> float:
            if self.cost == "multiply_adds":
                return costs[candidate.key].multiply_adds
            return latencies[candidate.key]

        source_cost = source_macs if self.cost == "multiply_adds" else source_latency
        kept = candidates
        if self.max_cost_ratio is not None:
            kept = [c for c in kept if cost_of(c) <= self.max_cost_ratio * source_cost]
        if self.max_multiply_adds_ratio is not None:
            kept = [c for c in kept if costs[c.key].multiply_adds <= self.max_multiply_adds_ratio * source_macs]
        if self.max_latency_ms is not None:
            kept = [c for c in kept if latencies[c.key] <= self.max_latency_ms]
        if not kept:
            cheapest = min(candidates, key=cost_of)
            raise ValueError(
                f"No candidate of the search space fits the budget (max_cost_ratio={self.max_cost_ratio}, "
                f"max_multiply_adds_ratio={self.max_multiply_adds_ratio}, max_latency_ms={self.max_latency_ms}): "
                f"the cheapest, {cheapest.key}, costs "
                f"{cost_of(cheapest) / source_cost:.3f} of the source's {self.cost}"
                + (f" ({latencies[cheapest.key]:.2f} ms)" if self.cost == "latency_ms" else "")
                + ". Raise the budget or add smaller values to the space."
            )
        info = {
            "costs": costs,
            "latencies": latencies,
            "source": (source_params, source_macs, source_latency),
        }
        return kept, info
