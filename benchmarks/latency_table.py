"""
The per-machine latency table a latency budget reads (issue 23): how long the first run takes to time the search
space of the packaged all-MiniLM-L6-v2, that a second run re-times nothing, and how well the analytic multiply-add
ratio predicts the measured latency ratio on this CPU (which shapes a `--max-latency-ratio` budget admits that a
`--max-cost-ratio` budget of the same value does not, and the reverse).

Run (a few minutes on 2 cores; one benchmark at a time):

    flock /tmp/hf_bort_bench.lock nice -n 5 python benchmarks/latency_table.py --threads 1

Writes benchmarks/results/latency_table_minilm.json (the command, the CPU model and flags, the machine fingerprint).
The table itself goes to a temporary file, not to the machine's cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig

from hf_bort.assets import packaged_minilm_path
from hf_bort.measure import cpu_flags, device_fingerprint, machine_info
from hf_bort.models.bort import bort_config_from
from hf_bort.ose import SearchSpace, candidate_config, encoder_multiply_adds
from hf_bort.ose.costs import LatencyCache, load_latencies

RESULTS = Path(__file__).parent / "results"


def _rank(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    for position, index in enumerate(order):
        ranks[index] = float(position)
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _rank(a), _rank(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--engine", default="pytorch", choices=("pytorch", "onnxruntime"))
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--budget", type=float, default=0.25, help="The ratio compared for both budgets.")
    parser.add_argument("--out", default=str(RESULTS / "latency_table_minilm.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    source = AutoConfig.from_pretrained(packaged_minilm_path())
    base = bort_config_from(source)
    space = SearchSpace.from_source(source)
    shapes = [(c, candidate_config(c, base)) for c in space.candidates()]
    source_macs = encoder_multiply_adds(base, args.sequence_length)
    fingerprint = device_fingerprint()

    def timed_run(path: Path) -> tuple[dict[str, float], float, int]:
        before = len(load_latencies(path).get(fingerprint, {}))
        cache = LatencyCache(path)  # a new object each run: only the file carries the timings over
        start = time.perf_counter()
        source_ms = cache.measure(base, sequence_length=args.sequence_length, engine=args.engine)
        table = {
            c.key: cache.measure(config, sequence_length=args.sequence_length, engine=args.engine)
            for c, config in shapes
        }
        wall = time.perf_counter() - start
        table["source"] = source_ms
        return table, wall, len(load_latencies(path)[fingerprint]) - before

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "latency.json"
        first, first_wall, first_timed = timed_run(path)
        second, second_wall, second_timed = timed_run(path)
    assert first == second, "the second run must read the first run's table"

    rows = []
    for candidate, config in shapes:
        mac_ratio = encoder_multiply_adds(config, args.sequence_length) / source_macs
        latency_ratio = first[candidate.key] / first["source"]
        rows.append(
            {
                "shape": candidate.key,
                "multiply_adds_ratio": mac_ratio,
                "latency_ratio": latency_ratio,
                "fraction_of_analytic": mac_ratio / latency_ratio,
                "latency_ms": first[candidate.key],
            }
        )
    by_macs = {r["shape"] for r in rows if r["multiply_adds_ratio"] <= args.budget}
    by_latency = {r["shape"] for r in rows if r["latency_ratio"] <= args.budget}
    within = [r for r in rows if r["shape"] in by_macs]
    fractions = sorted(r["fraction_of_analytic"] for r in within)
    report = {
        "command": "flock /tmp/hf_bort_bench.lock nice -n 5 python benchmarks/latency_table.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {**machine_info(), "cpu_flags": sorted(cpu_flags()), "fingerprint": fingerprint},
        "engine": args.engine,
        "threads": args.threads,
        "sequence_length": args.sequence_length,
        "batch_size": 1,
        "source": "packaged all-MiniLM-L6-v2",
        "source_latency_ms": first["source"],
        "shapes": len(shapes),
        "first_run": {"wall_s": first_wall, "entries_timed": first_timed},
        "second_run": {"wall_s": second_wall, "entries_timed": second_timed},
        "spearman_multiply_adds_vs_latency": spearman(
            [r["multiply_adds_ratio"] for r in rows], [r["latency_ratio"] for r in rows]
        ),
        "budget": args.budget,
        "within_multiply_adds_budget": len(by_macs),
        "within_latency_budget": len(by_latency),
        "within_both": len(by_macs & by_latency),
        "within_multiply_adds_budget_fraction_of_analytic": {
            "min": fractions[0] if fractions else None,
            "median": statistics.median(fractions) if fractions else None,
            "max": fractions[-1] if fractions else None,
        },
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("rows", "machine")}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
