"""
What running the teacher once saves in task distillation (issue 24, `compress`'s `task` stage): `recipe.finetune`
with the fine-tuned source as teacher, on a finished `compress` run's distilled student, without and with
`cache_teacher_logits` (the teacher's logits computed once over the rows, `ose.distill.add_teacher_logits`, instead of
on every batch of every epoch). Interleaved over --rounds rounds, same seed, same rows (the first --rows training rows
of the run's split; the test split is not read): seconds per run including the caching pass, their ratio, and the
training loss of both (the same loss, so the same up to float rounding).

Other processes may share this machine (said in `busy`): compare the ratio of one run, not seconds across runs.

Run (after a benchmarks/compress_task.py run, whose folder it reads):
  flock /tmp/hf_bort_bench.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/profile_task_cache.py \\
      --compress-dir /tmp/compress_task/compress_rt_seed0_task_es
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from results_io import timing_cpu_flags, write_result  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compress-dir", required=True)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--busy", default="", help="what else ran on the machine (recorded)")
    parser.add_argument("--name", default="profile_task_cache")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_bort import convert_to_bort
    from hf_bort.assets import load_rotten_tomatoes
    from hf_bort.compress import recipe

    run = Path(args.compress_dir)
    settings = json.loads((run / "compression_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(run / "source-finetuned")
    teacher = convert_to_bort(AutoModelForSequenceClassification.from_pretrained(run / "source-finetuned")).eval()
    student = AutoModelForSequenceClassification.from_pretrained(run / "student-distilled")
    train = load_rotten_tomatoes(seed=settings["seed"])["train"]
    rows = recipe.tokenise(train.select(range(min(args.rows, len(train)))), tokenizer, settings["max_length"])
    common = dict(
        epochs=args.epochs,
        learning_rate=settings["task_learning_rate"],
        batch_size=settings["batch_size"],
        seed=settings["seed"],
        show_progress=False,
        teacher=teacher,
        alpha_ce=settings["alpha_ce"],
        alpha_kd=settings["alpha_kd"],
        temperature=settings["temperature"],
    )
    runs: dict[str, list[dict]] = {"teacher_every_batch": [], "teacher_once": []}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.rounds):
            for name, cache in (("teacher_every_batch", False), ("teacher_once", True)):
                start = time.perf_counter()
                record = recipe.finetune(
                    copy.deepcopy(student), rows, tokenizer, work_dir=Path(work) / name, cache_teacher_logits=cache,
                    **common,
                )  # fmt: skip
                wall = time.perf_counter() - start
                runs[name].append({"round": round_, "wall_s": wall, "steps": record["steps"],
                                   "train_loss": record["train_loss"],
                                   "cache": record.get("teacher_logits_cached")})  # fmt: skip
                print(name, json.dumps(runs[name][-1]), flush=True)
    median = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    summary = {
        "median_wall_s": median,
        "speedup": median["teacher_every_batch"] / median["teacher_once"],
        "steps": runs["teacher_once"][0]["steps"],
        "train_loss_difference": max(
            abs(a["train_loss"] - b["train_loss"]) for a, b in zip(*runs.values(), strict=True)
        ),
    }
    print(json.dumps(summary, indent=1))
    student_config = json.loads((run / "student-distilled" / "config.json").read_text())
    write_result(
        args.name,
        {
            "command": "flock /tmp/hf_bort_bench.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python "
            "benchmarks/profile_task_cache.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "settings": vars(args),
            "student": {
                k: student_config.get(k)
                for k in ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size")
            },  # fmt: skip
            "teacher": "the run's source-finetuned (MiniLM-L6 fine-tuned on the task)",
            "cpu_flags": timing_cpu_flags(),
            "busy": args.busy,
            "runs": runs,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()
