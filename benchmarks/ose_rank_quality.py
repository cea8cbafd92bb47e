"""
Issue 11, benchmark 1: does the search's error surrogate ê rank candidates the way their accuracy after the recipe
does? For --num-candidates shapes of the packaged MiniLM's default space spread evenly (by rank of their multiply-add
ratio) over [--min-ratio, --max-ratio], measure
- the task surrogate of `hf-bort compress` (task distillation from the fine-tuned source for the search's full
  budget, ê = dev KL(teacher ‖ student) on the first 256 dev rows), and
- the previous surrogate (hidden-state distillation from the *pretrained* source, ε = 0.25 → 16 steps of 8 texts,
  held-out relative error; the settings of benchmarks/ose_search_minilm.py),
then train every candidate with the recipe (`hf_bort.compress.recipe.extract_and_distil` + task distillation, with
--distill-epochs / --task-epochs: shorter than compress's defaults, to fit the CPU) and report Kendall τ between
each ê and the dev error (1 − accuracy on all 500 dev rows). Test data is never read.

Run (after benchmarks/compress_rt.py --seed 0, whose fine-tuned source it reuses):
  flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_rank_quality.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from hf_bort import convert_to_bort  # noqa: E402
from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402
from hf_bort.compress import recipe  # noqa: E402
from hf_bort.ose import OSESearch, SearchSpace, candidate_costs  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-b (ties in either list counted as neither concordant nor discordant)."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compress-dir", default="/tmp/compress_rt/compress_rt_seed0")
    parser.add_argument("--num-candidates", type=int, default=12)
    parser.add_argument("--min-ratio", type=float, default=0.05)
    parser.add_argument("--max-ratio", type=float, default=0.40)
    parser.add_argument("--distill-epochs", type=float, default=0.5)
    parser.add_argument("--task-epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS / "ose_rank_quality.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    compress_dir = Path(args.compress_dir)
    settings = json.loads((compress_dir / "compression_config.json").read_text())
    seed, max_length = settings["seed"], settings["max_length"]
    source_dir = compress_dir / "source-finetuned"
    data = load_rotten_tomatoes(seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    classifier = AutoModelForSequenceClassification.from_pretrained(source_dir).eval()
    teacher = convert_to_bort(classifier).eval()

    space = SearchSpace.from_source(teacher.config)
    full = max(space.candidates(), key=lambda c: candidate_costs(c, teacher.config).multiply_adds)
    source_macs = candidate_costs(full, teacher.config, settings["cost_sequence_length"]).multiply_adds
    ratios = {
        c: candidate_costs(c, teacher.config, settings["cost_sequence_length"]).multiply_adds / source_macs
        for c in space.candidates()
    }
    pool = sorted(
        (c for c, r in ratios.items() if args.min_ratio <= r <= args.max_ratio), key=lambda c: (ratios[c], c)
    )
    step = (len(pool) - 1) / (args.num_candidates - 1)
    chosen = [pool[round(i * step)] for i in range(args.num_candidates)]

    eval_rows = min(settings["search_eval_rows"], len(data["validation"]))
    max_steps = math.ceil(settings["search_base_steps"] / settings["epsilon"])
    new = OSESearch(
        teacher,
        space,
        tokenizer=tokenizer,
        task_dataset=data["train"],
        eval_dataset=data["validation"].select(range(eval_rows)),
        objective="task",
        output_dir="/tmp/ose_rank_quality/new",
        epsilon=settings["epsilon"],
        interval_size=settings["search_interval"],
        max_steps=max_steps,
        batch_size=settings["search_batch_size"],
        eval_batch_size=64,
        num_eval_batches=-(-eval_rows // 64),
        max_train_batches=max_steps,
        max_length=max_length,
        learning_rate=settings["search_learning_rate"],
        seed=seed,
        show_progress=False,
    )
    old = OSESearch(
        str(packaged_minilm_path()),
        SearchSpace.from_source(packaged_minilm_path()),
        text_dataset=data["train"],
        output_dir="/tmp/ose_rank_quality/old",
        epsilon=0.25,
        interval_size=2,
        seed=seed,
        show_progress=False,
    )
    tokenised = {name: recipe.tokenise(data[name], tokenizer, max_length) for name in ("train", "validation")}
    rows = []
    for candidate in chosen:
        start = time.perf_counter()
        new_error, new_wall, new_metrics = new.evaluate_candidate(candidate, max_steps)
        old_error, old_wall, _ = old.evaluate_candidate(candidate, old.max_steps)
        student, extraction = recipe.extract_and_distil(
            teacher,
            candidate,
            tokenised["train"],
            tokenised["validation"],
            tokenizer,
            seed=seed,
            distill_epochs=args.distill_epochs,
            batch_size=settings["batch_size"],
            work_dir=Path("/tmp/ose_rank_quality/trainer"),
            show_progress=False,
        )
        training = recipe.finetune(
            student,
            tokenised["train"],
            tokenizer,
            epochs=args.task_epochs,
            learning_rate=settings["task_learning_rate"],
            batch_size=settings["batch_size"],
            seed=seed,
            work_dir=Path("/tmp/ose_rank_quality/trainer"),
            show_progress=False,
            teacher=teacher,
        )
        dev = recipe.evaluate(student, tokenised["validation"], tokenizer)
        row = {
            "candidate": candidate.key,
            "multiply_adds_ratio": ratios[candidate],
            "new_error": new_error,
            "new_search_dev_accuracy": new_metrics["dev_accuracy"],
            "new_wall_s": new_wall,
            "old_error": old_error,
            "old_wall_s": old_wall,
            "recipe_dev_accuracy": dev["accuracy"],
            "recipe_steps": training["steps"] + extraction.get("distillation", {}).get("steps", 0),
            "wall_s": time.perf_counter() - start,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    dev_error = [1 - r["recipe_dev_accuracy"] for r in rows]
    summary = {
        "kendall_tau_new_error_vs_dev_error": kendall_tau([r["new_error"] for r in rows], dev_error),
        "kendall_tau_new_search_accuracy_vs_dev_error": kendall_tau(
            [1 - r["new_search_dev_accuracy"] for r in rows], dev_error
        ),
        "kendall_tau_old_error_vs_dev_error": kendall_tau([r["old_error"] for r in rows], dev_error),
        "target": 0.6,
    }
    print(json.dumps(summary, indent=1))
    out = {
        "command": "flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src "
        "python benchmarks/ose_rank_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args) | {"search_max_steps": max_steps, "compress_settings": settings},
        "rows": rows,
        "summary": summary,
    }
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
