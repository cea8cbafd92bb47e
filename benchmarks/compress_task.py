"""
`hf-bort compress` on a packaged task with either budget (issues 23 and 24): `--max-cost-ratio` (the source's
encoder multiply-adds, the default) or `--max-latency-ratio` (the source's latency measured on this CPU, read from the
per-machine latency table). The source is the packaged all-MiniLM-L6-v2 (fine-tuned first by compress), every other
setting is compress's default; no hand choice. A thin caller of `hf_bort.compress`.

Tasks (`--task`): `rt` (Rotten Tomatoes polarity, `load_rotten_tomatoes`), `vader_sources` (which of VADER's four
sources a sentence comes from, `load_vader_sources`: 4 classes), `convention` (party of a convention-speech sentence,
`load_convention_sentences`). `--train-rows N` keeps a seeded sample of N training rows (dev and test whole).

A latency budget times every shape of the search space into the table on its first use. `--warm-latency-cache`
does that before any training, so run it alone (nothing else on the CPU) and the compress runs that follow, in
parallel or not, read the quiet table instead of timing shapes beside other work:

    flock /tmp/hf_bort_bench.lock env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_task.py --task rt \\
        --threads 1 --max-latency-ratio 0.25 --latency-cache /tmp/hf_bort_latency.json --warm-latency-cache --warm-only
    flock /tmp/hf_bort_acc.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_task.py \\
        --task rt --seed 0 --threads 1 --max-latency-ratio 0.25 --latency-cache /tmp/hf_bort_latency.json --tag lat25

`--continue-from RUN` measures a later stage on a finished run (issue 24) without redoing the search and the
hidden-state distillation: RUN's folder is copied to this run's folder, its records from `--rerun-from` on are dropped
and compress resumes there. `--rerun-from augment` (the default) keeps the task student and reruns the `augment`
round on; RUN's settings must equal this invocation's except the augmentation fields (checked). A run saved before
`task_patience` existed trained exactly `task_epochs`: continue it from `augment` with `--task-patience 0`.

    flock /tmp/hf_bort_acc.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_task.py \\
        --task rt --seed 0 --threads 1 --tag gate --continue-from /tmp/compress_task/compress_rt_seed0_mac25

`--rerun-from task` also trains the task student again from RUN's distilled student (`student-distilled`), so the
`task_*` fields (task_epochs, task_learning_rate, task_patience, task_max_epochs) may differ too; what the stages from
`task` on wrote in the copy (`student`, `student-task`, `augment`, the report, ...) is deleted there first. Task
distillation with the defaults (early stopping after 2 epochs without a better dev macro-F1, at most 10 epochs):

    flock /tmp/hf_bort_acc.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compress_task.py \\
        --task rt --seed 0 --threads 1 --tag task_es --rerun-from task \\
        --continue-from /tmp/compress_task/compress_rt_seed0_mac25

Writes benchmarks/results/compress_{task}_seed{seed}[_{tag}].json: the command, the CPU flags, a summary and the
whole compression report. Timings inside a report taken while other work ran are marked by `--busy`; compare
speeds with `hf-bort bench` on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from results_io import timing_cpu_flags, write_result  # noqa: E402

from hf_bort import CompressionConfig, compress  # noqa: E402
from hf_bort.assets import (  # noqa: E402
    load_convention_sentences,
    load_rotten_tomatoes,
    load_vader_sources,
    packaged_minilm_path,
)

TASKS = {"rt": load_rotten_tomatoes, "vader_sources": load_vader_sources, "convention": load_convention_sentences}


def task_splits(task: str, seed: int, train_rows: int | None):
    data = TASKS[task](seed=seed)
    if train_rows is not None:
        if train_rows > len(data["train"]):
            raise SystemExit(f"--train-rows {train_rows} exceeds the {len(data['train'])} training rows of {task}.")
        data["train"] = data["train"].shuffle(seed=seed).select(range(train_rows))
    return data


def warm_latency_cache(config: CompressionConfig, texts: list[str]) -> dict:
    """Times the source and every shape of compress's search space into the latency table, as its search would."""
    import torch
    from transformers import AutoConfig

    from hf_bort.compress.checks import search_space
    from hf_bort.models.bort import bort_config_from
    from hf_bort.ose import OSESearch

    if config.threads is not None:
        torch.set_num_threads(config.threads)  # the table is keyed by thread count: as compress will run
    bort_config = bort_config_from(AutoConfig.from_pretrained(config.model))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        space = search_space(config, bort_config)
        search = OSESearch(config.model, space, config.search_config(directory, 1), text_dataset=texts)
        kept, info = search.candidates_within_budget()
    return {
        "wall_s": time.perf_counter() - start,
        "shapes_timed_or_read": len(info["latencies"]),
        "within_budget": len(kept),
        "source_latency_ms": info["source"][2],
        "cache": config.resolved_latency_cache(),
    }


def summary(report: dict) -> dict:
    source, student = report["source"], report["student"]
    return {
        "source": {"dev": source["dev"], "test": source.get("test")},
        "student": {
            "shape": student["shape"],
            "multiply_adds_ratio": student["multiply_adds_ratio"],
            "dev": student["dev"],
            "test": student.get("test"),
        },
        "task_distillation": {  # how long the task stage ran and which epoch it kept (issue 24)
            name: (student.get("task_distillation") or {}).get(name)
            for name in ("epochs", "best_epoch", "stopped", "patience", "max_epochs", "dev_per_epoch")
        },
        "speed": report.get("speed"),
        "warnings": report.get("warnings", []),
        "wall_s": report["wall_s"],
    }


AUGMENT_FIELDS = ("augment", "augment_budget", "augment_epochs")  # settings of the stages from `augment` on
TASK_FIELDS = ("task_epochs", "task_learning_rate", "task_patience", "task_max_epochs")  # the `task` stage's
STAGE_ORDER = ("data", "source", "search", "distill", "task", "augment")
# what the stages from `task` on leave in the run folder (compress/run.py RUN_ENTRIES): deleted when `task` reruns,
# or the `augment` stage would reuse the old round's teacher calls and the `qat` stage the old student copy
FROM_TASK_ENTRIES = (
    "student",
    "student-task",
    "student-task.tmp",
    "student-augment.tmp",
    "student-qat.tmp",
    "augment",
    "tmp-trainer",
    "onnx",
    "compression_report.json",
)


def continue_from(
    run: Path, config: CompressionConfig, rerun_from: str = "augment", task_fields: tuple[str, ...] = TASK_FIELDS
) -> list[str]:
    """
    Copy the finished compress run `run` to `config.output_dir`, keeping only its stages before `rerun_from`
    (`augment`: the task student is kept; `task`: the distilled student is trained again, and what the stages from
    `task` on wrote in the copy is deleted). Settings must equal this invocation's except those of the stages rerun
    (`task_fields` are the `task` stage's: the classification ones by default; `compress_embeddings.py` passes the
    embedding distillation's). Returns the stages kept.
    """
    if rerun_from not in ("task", "augment"):
        raise SystemExit(f"--rerun-from must be 'task' or 'augment', got {rerun_from!r}")
    kept_stages = STAGE_ORDER[: STAGE_ORDER.index(rerun_from)]
    free = AUGMENT_FIELDS + (task_fields if rerun_from == "task" else ()) + ("output_dir",)
    target = Path(config.output_dir)
    if target.exists():
        raise SystemExit(f"--continue-from: {target} exists; remove it or choose another --tag")
    saved = json.loads((run / "compression_config.json").read_text())
    others = [name for name in config.differences(saved) if name not in free]
    if others:
        raise SystemExit(f"--continue-from: {run} was run with other settings: {others}")
    progress = json.loads((run / "progress.json").read_text())
    missing = [stage for stage in kept_stages if stage not in progress["stages"]]
    if missing:
        raise SystemExit(f"--continue-from: {run} has not finished {missing}")
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".hf_bort.lock"))
    if rerun_from == "task":  # only inside the copy, only the entries compress writes there
        for name in FROM_TASK_ENTRIES:
            entry = target / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    for stage in ("stages", "wall_s"):
        progress[stage] = {k: v for k, v in progress[stage].items() if k in kept_stages}
    (target / "progress.json").write_text(json.dumps(progress, indent=2))
    config.save(target / "compression_config.json")
    return list(kept_stages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="rt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=None, help="a seeded sample of the training rows")
    parser.add_argument("--max-cost-ratio", type=float, default=None, help="default 0.25 without a latency budget")
    parser.add_argument("--max-latency-ratio", type=float, default=None)
    parser.add_argument("--latency-cache", default=None, help="the latency table (default: the machine's)")
    parser.add_argument("--warm-latency-cache", action="store_true", help="time the table first (run it alone)")
    parser.add_argument("--warm-only", action="store_true", help="stop after --warm-latency-cache")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text (as the earlier RT runs)")
    parser.add_argument("--candidate", default=None, help="student shape given: no search (baselines)")
    parser.add_argument("--layer-selection", default="importance")
    parser.add_argument("--source-finetuned", default=None, help="reuse a fine-tuned source (a classifier folder)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/compress_task")
    parser.add_argument("--tag", default="", help="suffix of the output names")
    parser.add_argument("--busy", default=None, help="what else ran on the CPU meanwhile (recorded)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--continue-from", default=None, help="a finished run's folder: rerun from --rerun-from on")
    parser.add_argument("--rerun-from", choices=("task", "augment"), default="augment", help="with --continue-from")
    parser.add_argument("--task-patience", type=int, default=None, help="default: compress's (0: exactly 3 epochs)")
    parser.add_argument("--task-max-epochs", type=int, default=None, help="default: compress's")
    args = parser.parse_args(argv)
    if args.max_cost_ratio is None and args.max_latency_ratio is None:
        args.max_cost_ratio = 0.25
    name = f"compress_{args.task}_seed{args.seed}{('_' + args.tag) if args.tag else ''}"
    data = task_splits(args.task, args.seed, args.train_rows)
    config = CompressionConfig(
        model=args.source_finetuned or str(packaged_minilm_path()),
        dataset=data,
        dataset_name=f"{args.task} ({TASKS[args.task].__name__}(seed={args.seed})"
        + (f", {args.train_rows} training rows" if args.train_rows else "")
        + ")",
        max_cost_ratio=args.max_cost_ratio,
        max_latency_ratio=args.max_latency_ratio,
        latency_cache=args.latency_cache,
        max_length=args.max_length,
        candidate=args.candidate,
        layer_selection=args.layer_selection,
        seed=args.seed,
        output_dir=str(Path(args.work_dir) / name),
        threads=args.threads,
        show_progress=args.progress,
        task_patience=args.task_patience,
        task_max_epochs=args.task_max_epochs,
    )
    out: dict = {
        "command": " ".join(["python benchmarks/compress_task.py", *(argv if argv is not None else sys.argv[1:])]),
        "dataset": config.dataset_name,
        "rows": {split: len(rows) for split, rows in data.items()},
        "cpu_flags": timing_cpu_flags(),
        "busy": args.busy,
    }
    if args.warm_latency_cache:
        out["latency_table"] = warm_latency_cache(config, list(data["validation"]["text"]))
        print(json.dumps(out["latency_table"]), flush=True)
        if args.warm_only:
            return
    if args.continue_from:
        kept = continue_from(Path(args.continue_from), config, args.rerun_from)
        out["continued_from"] = {"run": args.continue_from, "rerun_from": args.rerun_from, "stages_kept": kept}
    start = time.perf_counter()
    result = compress(config)
    print(result.summary(), flush=True)
    out["summary"] = {**summary(result.report), "wall_s_this_call": time.perf_counter() - start}
    out["report"] = result.report
    write_result(name, out)


if __name__ == "__main__":
    main()
