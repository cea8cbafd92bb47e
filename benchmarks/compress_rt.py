"""
`hf-bort compress` on Rotten Tomatoes polarity (issue 11, benchmark 2): the packaged all-MiniLM-L6-v2 (a pretrained
encoder, so the source is fine-tuned first with compress's default recipe), the splits of
`hf_bort.assets.load_rotten_tomatoes(seed)`, a budget of --max-cost-ratio of the source's multiply-adds, no hand
choice. A thin caller of `hf_bort.compress`: every stage lives in the library; this script only fixes the data and
writes the report to benchmarks/results/.

Run: flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_rt.py --seed 0
Baseline (keep 2 of 6 layers of the fine-tuned source, same distillation): add
     --candidate D2-A12-H384-I1536-d32 --layer-selection first --tag keep2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_bort import CompressionConfig, compress  # noqa: E402
from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cost-ratio", type=float, default=0.25)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per review (as the earlier RT runs)")
    parser.add_argument("--candidate", default=None, help="skip the search (baselines)")
    parser.add_argument("--layer-selection", default="importance")
    parser.add_argument("--source-finetuned", default=None, help="reuse a fine-tuned source (a classifier folder)")
    parser.add_argument("--tag", default="", help="suffix of the output names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default="/tmp/compress_rt")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    name = f"compress_rt_seed{args.seed}{('_' + args.tag) if args.tag else ''}"
    config = CompressionConfig(
        model=args.source_finetuned or str(packaged_minilm_path()),
        dataset=load_rotten_tomatoes(seed=args.seed),
        max_cost_ratio=args.max_cost_ratio,
        max_length=args.max_length,
        seed=args.seed,
        candidate=args.candidate,
        layer_selection=args.layer_selection,
        output_dir=str(Path(args.work_dir) / name),
        threads=args.threads,
        show_progress=args.progress,
    )
    start = time.perf_counter()
    result = compress(config)
    wall = time.perf_counter() - start
    print(result.summary(), flush=True)
    command = "flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_rt.py"
    out = {
        "command": " ".join([command, *(argv if argv is not None else sys.argv[1:])]),
        "dataset": f"rotten_tomatoes (hf_bort.assets.load_rotten_tomatoes(seed={args.seed}))",
        "wall_s_this_call": wall,
        "report": result.report,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
