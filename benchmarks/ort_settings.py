"""Which ONNX Runtime session settings make ORT fp32 at least as fast as PyTorch on a small encoder? PyTorch eager
and the fused fp32 ONNX graph under several session settings, timed interleaved (drift on a shared CPU hits all
alike) at each batch size, one sequence length, `--threads` threads.

Run (one benchmark at a time on this machine):

    flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ort_settings.py \\
        --model /tmp/compress_rt/compress_rt_seed0/source-finetuned --model /tmp/compress_rt/compress_rt_seed0/student

Writes benchmarks/results/ort_settings.json (with the command and the CPU flags).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hf_bort  # noqa: E402,F401  (registers bort)
from hf_bort.exporters import export_onnx  # noqa: E402
from hf_bort.measure import bench_machine_info, latency_summary, ort_session, session_feed, time_interleaved  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COMMAND = "flock /tmp/hf_bort_bench.lock nice -n 5 python benchmarks/ort_settings.py"
SETTINGS = {
    "default": {},
    "no spinning": {"session.intra_op.allow_spinning": "0"},
    "dynamic block base 4": {"session.dynamic_block_base": "4"},
    "no spinning, block base 4": {"session.intra_op.allow_spinning": "0", "session.dynamic_block_base": "4"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="Classifier folder (repeatable).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--work-dir", default="/tmp/ort_settings")
    parser.add_argument("--output", default=str(RESULTS / "ort_settings.json"))
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_bort.measure import random_inputs

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = {
        "command": "flock /tmp/hf_bort_bench.lock nice -n 5 python benchmarks/ort_settings.py "
        + " ".join(sys.argv[1:]),
        "machine": bench_machine_info(args.threads, None),
        "timing_note": "2 shared cores: other helpers ran tests on the same machine during this run; engines are "
        "timed interleaved so drift hits them alike; ratios from one run",
        "settings": SETTINGS,
        "models": {},
    }
    for index, path in enumerate(args.model):
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        out = Path(args.work_dir) / str(index)
        export_onnx(model, out, task="text-classification", overwrite=True)
        rows = []
        for batch in args.batch_sizes:
            inputs = random_inputs(model.config, batch, args.seq_len, seed=0)
            sessions = {
                name: ort_session(out / "model.onnx", args.threads, entries) for name, entries in SETTINGS.items()
            }
            runners = {name: partial(s.run, None, session_feed(s, inputs)) for name, s in sessions.items()}

            def pytorch(inputs=inputs, model=model):
                with torch.inference_mode():
                    model(**inputs)

            runners = {"pytorch": pytorch, **runners}
            times = time_interleaved(runners, args.runs)
            summary = {name: latency_summary(values) for name, values in times.items()}
            for stats in summary.values():
                stats["speedup_vs_pytorch"] = summary["pytorch"]["p50_ms"] / stats["p50_ms"]
            rows.append({"batch_size": batch, "seq_len": args.seq_len, "engines": summary})
            print(path, batch, {n: round(s["speedup_vs_pytorch"], 3) for n, s in summary.items()}, flush=True)
            del sessions, runners
        result["models"][path] = rows
    result["wall_s"] = time.perf_counter() - started
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(args.output)


if __name__ == "__main__":
    main()
