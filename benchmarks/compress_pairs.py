"""
`hf-bort compress` on text pairs (issue 22, item 6): a cross-encoder for the Lee document-similarity pairs
(Lee, Pincombe & Welsh 2005; 50 news documents, 1,225 human-rated pairs, read from gensim's test data by
`hf_bort.assets.load_lee_pairs(seed)`; label 1 = mean rating ≥ 1.5 of 5). The source is the packaged
all-MiniLM-L6-v2 (a pretrained encoder): compress fine-tunes it on the pairs as the teacher, then searches,
distils and checks the student, every step fed (text, text_pair). Reduced settings so that it runs in under
30 minutes on one thread: 128 tokens per pair, 2 fine-tuning epochs, a small search (2 or 3 layers, ε 0.5,
8 base steps: 16 steps per fully trained candidate), 1 epoch of hidden-state distillation, 2 of task distillation,
50 latency runs. A thin caller of `hf_bort.compress`: it only fixes the data and the settings and writes the
report to benchmarks/results/.

Run: flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_pairs.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from results_io import write_result  # noqa: E402

from hf_bort import CompressionConfig, compress  # noqa: E402
from hf_bort.assets import LEE_SIMILAR_THRESHOLD, load_lee_pairs, packaged_minilm_path  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COMMAND = (
    "flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_pairs.py"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cost-ratio", type=float, default=0.25)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per pair (both texts together)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/compress_pairs")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    name = f"compress_pairs_lee_seed{args.seed}"
    config = CompressionConfig(
        model=str(packaged_minilm_path()),
        dataset=load_lee_pairs(seed=args.seed),
        dataset_name="Lee document-similarity pairs (gensim test data)",
        text_pair_column="text_pair",
        max_cost_ratio=args.max_cost_ratio,
        max_length=args.max_length,
        cost_sequence_length=args.max_length,
        finetune_epochs=2.0,
        batch_size=16,
        epsilon=0.5,
        search_base_steps=8,
        search_interval=4,
        search_layers="2,3",
        search_eval_rows=184,
        distill_epochs=1.0,
        task_epochs=2.0,
        latency_runs=50,
        seed=args.seed,
        output_dir=str(Path(args.work_dir) / name),
        threads=args.threads,
        show_progress=args.progress,
    )
    start = time.perf_counter()
    result = compress(config)
    wall = time.perf_counter() - start
    print(result.summary(), flush=True)
    out = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "dataset": (
            f"Lee, Pincombe & Welsh (2005) document pairs (hf_bort.assets.load_lee_pairs(seed={args.seed}): gensim "
            f"4.4.0 test data lee.cor + similarities0-1.txt), label 1 = similarity >= {LEE_SIMILAR_THRESHOLD}"
        ),
        "wall_s_this_call": wall,
        "report": result.report,
    }
    write_result(name, out)


if __name__ == "__main__":
    main()
