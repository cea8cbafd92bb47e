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

`--recipe full` trains each candidate with the recipe `compress` runs today, read from the run's
`compression_config.json`: hidden-state distillation for `distill_epochs`, then task distillation evaluated on dev
every epoch, early-stopped after `task_patience` epochs without a better dev `best_checkpoint_metric` (at least
`task_epochs`, at most `task_max_epochs`), the best dev epoch kept — `compress`'s `distil` and `task` stages exactly
(no augmentation round). The dev error is then measured on all dev rows. Every surrogate term is recorded (dev KL,
dev gold cross-entropy, dev accuracy), so ê = (1 − w)·KL + w·CE is scored for w = 0, 0.25, 0.5, 0.75, 1.

A full-recipe candidate costs 10–30 CPU-minutes, so the run is resumable and can be split: `--shard K/N` trains the
candidates at positions K, K + N, … of a spread order (each prefix of it covers the ratio range), `--resume` keeps the
rows already in `--output` and writes the file after every candidate, and `--merge A.json B.json … --output X.json`
joins shard files of the same settings (a second process may take a shard from its end: `--reverse --skip-done
THE_FIRST.json` with its own `--output`) and computes the summary over their rows (with `partial: true` while
fewer than `--num-candidates` rows are in).

Runs:
  # the shortened recipe (the first measurement), after benchmarks/compress_rt.py --seed 0:
  flock /tmp/hf_bort_cpu.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_rank_quality.py \
      --threads 1 --distill-epochs 0 --task-epochs 0.5
  # the full recipe, two shards side by side at one thread each, then merged:
  for k in 0 1; do HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_rank_quality.py --recipe full \
      --compress-dir /tmp/compress_task/compress_rt_seed0_task_es --threads 1 --shard $k/2 --resume \
      --output benchmarks/results/ose_rank_quality_full_shard$k.json & done; wait
  PYTHONPATH=src python benchmarks/ose_rank_quality.py --merge benchmarks/results/ose_rank_quality_full_shard0.json \
      benchmarks/results/ose_rank_quality_full_shard1.json --output benchmarks/results/ose_rank_quality_full.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
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


GOLD_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Arguments that define the experiment: shards and resumed files must agree on them.
DESIGN = ("compress_dir", "num_candidates", "min_ratio", "max_ratio", "recipe", "distill_epochs", "task_epochs")


def spread_order(count: int) -> list[int]:
    """
    0 … count-1 in bisection order: both ends, then repeatedly the middle of the widest gap left (the leftmost of
    equal ones), so that every prefix spreads over the range: 12 → 0, 11, 5, 8, 2, 3, 6, 9, 1, 4, 7, 10.
    """
    order = list(range(min(count, 2)))
    if count > 1:
        order[1] = count - 1
    while len(order) < count:
        ends = sorted(order)
        low, high = max(zip(ends, ends[1:], strict=False), key=lambda gap: (gap[1] - gap[0], -gap[0]))
        order.append((low + high) // 2)
    return order


def summarise(rows: list[dict], num_candidates: int) -> dict:
    """Kendall τ of every ê against the recipe's dev error, over the rows there are."""
    dev_error = [1 - r["recipe_dev_accuracy"] for r in rows]
    summary = {
        "candidates": len(rows),
        "partial": len(rows) < num_candidates,
        "kendall_tau_new_error_vs_dev_error": kendall_tau([r["new_error"] for r in rows], dev_error),
        "kendall_tau_new_search_accuracy_vs_dev_error": kendall_tau(
            [1 - r["new_search_dev_accuracy"] for r in rows], dev_error
        ),
        "kendall_tau_old_error_vs_dev_error": kendall_tau([r["old_error"] for r in rows], dev_error),
        "target": 0.6,
    }
    if all("new_dev_gold_loss" in r for r in rows):  # ê = (1 - w)·KL + w·CE(gold) for each weight w
        summary["kendall_tau_by_gold_weight"] = {
            str(w): kendall_tau([(1 - w) * r["new_dev_kl"] + w * r["new_dev_gold_loss"] for r in rows], dev_error)
            for w in GOLD_WEIGHTS
        }
    return summary


def merge(paths: list[str], output: str) -> None:
    """Joins shard files written with the same design arguments and writes the summary over all their rows."""
    files = [json.loads(Path(p).read_text()) for p in paths]
    design = {k: files[0]["settings"][k] for k in DESIGN if k in files[0]["settings"]}
    for path, data in zip(paths[1:], files[1:], strict=True):
        other = {k: data["settings"].get(k) for k in design}
        if other != design:
            raise SystemExit(f"--merge: {path} has other design arguments than {paths[0]}: {other} vs {design}")
    rows = sorted((r for data in files for r in data["rows"]), key=lambda r: r["multiply_adds_ratio"])
    keys = [r["candidate"] for r in rows]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"--merge: a candidate is in more than one file: {sorted(keys)}")
    out = {
        "commands": [c for data in files for c in data.get("commands", [data.get("command")])]
        + ["python benchmarks/ose_rank_quality.py --merge " + " ".join(paths) + f" --output {output}"],
        "merged_from": paths,
        "settings": {k: v for k, v in files[0]["settings"].items() if k not in ("shard", "output", "resume")},
        "rows": rows,
        "summary": summarise(rows, design["num_candidates"]),
    }
    print(json.dumps(out["summary"], indent=1))
    Path(output).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {output}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compress-dir", default="/tmp/compress_rt/compress_rt_seed0")
    parser.add_argument("--num-candidates", type=int, default=12)
    parser.add_argument("--min-ratio", type=float, default=0.05)
    parser.add_argument("--max-ratio", type=float, default=0.40)
    parser.add_argument(
        "--recipe",
        choices=("short", "full"),
        default="short",
        help="short: --distill-epochs / --task-epochs, no dev evaluation; full: compress's distil + task stages "
        "with the run's settings (early stopping, best dev epoch)",
    )
    parser.add_argument("--distill-epochs", type=float, default=0.5)
    parser.add_argument("--task-epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--shard", default="0/1", help="K/N: the candidates at positions K, K+N, … of the spread order"
    )
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --output and go on")
    parser.add_argument("--reverse", action="store_true", help="run this shard's candidates from its last one")
    parser.add_argument(
        "--skip-done",
        nargs="+",
        default=[],
        metavar="JSON",
        help="skip candidates these files hold, read before each candidate (a second process on the same shard, "
        "with --reverse, writing its own --output)",
    )
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="join these shard files into --output and stop")
    parser.add_argument("--output", default=str(RESULTS / "ose_rank_quality.json"))
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.output)
        return
    shard, shards = (int(x) for x in args.shard.split("/"))
    if not 0 <= shard < shards:
        raise SystemExit(f"--shard must be K/N with 0 <= K < N, got {args.shard!r}")
    if args.recipe == "full" and (args.distill_epochs, args.task_epochs) != (0.5, 1.0):
        raise SystemExit("--recipe full takes its epochs from the run's compression_config.json: drop --*-epochs")
    output = Path(args.output)
    command = "env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/ose_rank_quality.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    rows, commands = [], []
    if args.resume and output.exists():
        previous = json.loads(output.read_text())
        clash = {k: (previous["settings"].get(k), getattr(args, k)) for k in DESIGN + ("shard",)}
        clash = {k: v for k, v in clash.items() if v[0] != v[1]}
        if clash:
            raise SystemExit(f"--resume: {output} was written with other arguments (old, new): {clash}")
        rows, commands = previous["rows"], previous.get("commands", [previous.get("command")])
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
    mine = [chosen[i] for position, i in enumerate(spread_order(len(chosen))) if position % shards == shard]
    if args.reverse:
        mine.reverse()
    done = {r["candidate"] for r in rows}

    def done_elsewhere(key: str) -> bool:
        for path in args.skip_done:
            if Path(path).exists() and key in {r["candidate"] for r in json.loads(Path(path).read_text())["rows"]}:
                return True
        return False

    eval_rows = min(settings["search_eval_rows"], len(data["validation"]))
    max_steps = math.ceil(settings["search_base_steps"] / settings["epsilon"])
    work = Path(f"/tmp/ose_rank_quality/{args.recipe}-shard{shard}of{shards}{'-reverse' if args.reverse else ''}")
    new = OSESearch(
        teacher,
        space,
        tokenizer=tokenizer,
        task_dataset=data["train"],
        eval_dataset=data["validation"].select(range(eval_rows)),
        objective="task",
        output_dir=str(work / "new"),
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
        output_dir=str(work / "old"),
        epsilon=0.25,
        interval_size=2,
        seed=seed,
        show_progress=False,
    )
    tokenised = {name: recipe.tokenise(data[name], tokenizer, max_length) for name in ("train", "validation")}
    full_recipe = args.recipe == "full"
    epochs = (settings["distill_epochs"], settings["task_epochs"]) if full_recipe else None
    header = {
        "command": command,
        "settings": vars(args) | {"search_max_steps": max_steps, "compress_settings": settings},
    }
    code = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    for candidate in mine:
        if candidate.key in done or done_elsewhere(candidate.key):
            continue
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
            distill_epochs=epochs[0] if full_recipe else args.distill_epochs,
            batch_size=settings["batch_size"],
            work_dir=work / "trainer",
            show_progress=False,
            **(  # full: compress's `distil` stage (driver.distil_settings)
                dict(
                    distill_learning_rate=settings["distill_learning_rate"],
                    layer_selection=settings["layer_selection"],
                )
                if full_recipe
                else {}
            ),
        )
        patience = settings["task_patience"] if full_recipe else None
        training = recipe.finetune(  # full: compress's `task` stage (classification.py `train_student`)
            student,
            tokenised["train"],
            tokenizer,
            epochs=(settings["task_max_epochs"] if patience else epochs[1]) if full_recipe else args.task_epochs,
            learning_rate=settings["task_learning_rate"],
            batch_size=settings["batch_size"],
            seed=seed,
            work_dir=work / "trainer",
            show_progress=False,
            teacher=teacher,
            **(
                dict(
                    alpha_ce=settings["alpha_ce"],
                    alpha_kd=settings["alpha_kd"],
                    temperature=settings["temperature"],
                    eval_dataset=tokenised["validation"],
                    best_metric=settings["best_checkpoint_metric"],
                    patience=patience or None,
                    patience_after_epochs=epochs[1],
                    cache_teacher_logits=True,  # as the `task` stage: the same loss, the teacher run once
                )
                if full_recipe
                else {}
            ),
        )
        dev = recipe.evaluate(student, tokenised["validation"], tokenizer)
        row = {
            "candidate": candidate.key,
            "multiply_adds_ratio": ratios[candidate],
            "new_error": new_error,
            "new_search_dev_accuracy": new_metrics["dev_accuracy"],
            "new_dev_kl": new_metrics["dev_kl"],
            "new_dev_gold_loss": new_metrics["dev_gold_loss"],
            "new_wall_s": new_wall,
            "old_error": old_error,
            "old_wall_s": old_wall,
            "recipe_dev_accuracy": dev["accuracy"],
            "recipe_dev_macro_f1": dev.get("macro_f1"),
            "recipe_steps": training["steps"] + extraction.get("distillation", {}).get("steps", 0),
            **({"recipe_task_epochs_kept": training["best_epoch"]} if full_recipe else {}),
            "wall_s": time.perf_counter() - start,
            "code": code,  # the commit that trained it (a resumed run may span commits)
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        out = {
            **header,
            "commands": [*commands, command] if not commands or commands[-1] != command else commands,
            "rows": sorted(rows, key=lambda r: r["multiply_adds_ratio"]),
            "summary": summarise(rows, len(mine)),
        }
        output.write_text(json.dumps(out, indent=1) + "\n")  # after every candidate: a stop loses at most one
    print(json.dumps(summarise(rows, len(mine)), indent=1))
    print(f"wrote {output}" if len(rows) > len(done) else f"nothing left to run: {output} unchanged")


if __name__ == "__main__":
    main()
