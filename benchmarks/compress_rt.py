"""
`hf-bort compress` on Rotten Tomatoes polarity (issue 11, benchmark 2): `benchmarks/compress_task.py --task rt` (the
packaged all-MiniLM-L6-v2 fine-tuned first, the splits of `hf_bort.assets.load_rotten_tomatoes(seed)`, a budget of
--max-cost-ratio of the source's multiply-adds, no hand choice). Kept so the commands recorded in
`benchmarks/results/compress_rt_seed*.json` still run; every option is compress_task.py's.

Run: flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_rt.py --seed 0
Baseline (keep 2 of 6 layers of the fine-tuned source, same distillation): add
     --candidate D2-A12-H384-I1536-d32 --layer-selection first --tag keep2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from compress_task import main as compress_task_main  # noqa: E402

if __name__ == "__main__":
    compress_task_main(["--task", "rt", "--work-dir", "/tmp/compress_rt", *sys.argv[1:]])
