"""
Are students chosen by measured latency faster than students chosen by multiply-adds, at the same accuracy (issue 23)?

Reads pairs of `benchmarks/compress_task.py` results for one task and seed, one run with `--max-cost-ratio R` and one
with `--max-latency-ratio R`, and times both students beside their source in one process at each thread count
(`hf_bort.exporters.bench.run_benchmark`: PyTorch eager and ORT fp32 of the encoders — the task head, one small
product, left out — the models one after the other). The JSON puts, per task, the measured student/source speedup
next to the analytic multiply-add ratio (and its fraction) and the test accuracies the compress reports recorded.

Run (alone on the machine: it times; one benchmark at a time):

    flock /tmp/hf_bort_bench.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/latency_choice.py \\
        --runs rt_seed0 vader_sources_seed0 --cost-tag mac25 --latency-tag lat25 --threads 1 2

Writes benchmarks/results/latency_choice.json (the command, CPU model and flags, every timing row).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from results_io import RESULTS, timing_cpu_flags  # noqa: E402

from hf_bort.exporters.bench import BenchConfig, run_benchmark  # noqa: E402


def _run(name: str) -> dict:
    path = RESULTS / f"compress_{name}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/compress_task.py for it first.")
    report = json.loads(path.read_text())["report"]
    student = report["student"]
    return {
        "result": path.name,
        "student_path": student["path"],
        "source_path": report["source"]["path"],
        "shape": student["shape"],
        "multiply_adds_ratio": student["multiply_adds_ratio"],
        "budget": {
            key: report["settings"][key]
            for key in ("max_cost_ratio", "max_latency_ratio", "latency_engine")
            if report["settings"].get(key) is not None
        },
        "dev": student["dev"],
        "test": student.get("test"),
        "source_test": report["source"].get("test"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="task_seedK names of compress_task.py results")
    parser.add_argument("--cost-tag", default="mac25")
    parser.add_argument("--latency-tag", default="lat25")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[128])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--output", default=str(RESULTS / "latency_choice.json"))
    args = parser.parse_args(argv)
    out: dict = {
        "command": " ".join(["python benchmarks/latency_choice.py", *(argv if argv is not None else sys.argv[1:])]),
        "cpu_flags": timing_cpu_flags(),
        "tasks": {},
    }
    for name in args.runs:
        by_cost, by_latency = _run(f"{name}_{args.cost_tag}"), _run(f"{name}_{args.latency_tag}")
        models = {
            "source": by_cost["source_path"],
            "cost": by_cost["student_path"],
            "latency": by_latency["student_path"],
        }
        task = {"chosen_by_multiply_adds": by_cost, "chosen_by_latency": by_latency, "timings": {}}
        for threads in args.threads:
            config = BenchConfig(
                batch_sizes=args.batch_sizes,
                seq_lengths=args.seq_lengths,
                threads=threads,
                iterations=args.iterations,
                engines=["pytorch", "ort-fp32"],
            )
            result = run_benchmark(models, config, comparisons=[("cost", "source"), ("latency", "source")])
            task["timings"][f"threads_{threads}"] = {
                "machine": result.machine,
                "rows": result.rows,
                "comparisons": result.comparisons,
            }
        out["tasks"][name] = task
    Path(args.output).write_text(json.dumps(out, indent=1, default=str) + "\n")
    for name, task in out["tasks"].items():
        for threads, timing in task["timings"].items():
            for row in timing["comparisons"]:
                print(
                    name,
                    threads,
                    row["model"],
                    row["engine"],
                    f"b{row['batch_size']}",
                    f"{row['measured_speedup']:.2f}x of analytic {row['analytic_ratio']:.2f}x",
                )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
