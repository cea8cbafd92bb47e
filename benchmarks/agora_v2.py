"""
Agora v2 against its baselines (issue 21), in one run, on the same splits per seed and with the same final training.

Per task and seed (a thin caller: every Agora setting is one `AgoraTrainer` with a different `AgoraConfig`):

- teacher: the packaged all-MiniLM-L6-v2 fine-tuned (--teacher-epochs, lr 5e-5, batch 32) on a fixed slice of the
  task's train split (--teacher-size rows), DISJOINT from every seed's gold rows and pool; trained once per task.
  Logged: its accuracy on test, on each seed's pool (the pool's gold labels are read only for this log) and on the
  samples each setting sends it;
- student: a 3-layer extraction of the same MiniLM (its first three layers, fresh 2-class head);
- gold rows: --n rows of the rest of train (seeded draw); pool: the next --pool-size texts (labels never used for
  training); dev: the task's validation split, which v2 splits (seeded, stratified) into a selection part and a
  stopping part; test: the task's test split (never seen by any setting).

Settings (every final model is trained from the initial weights for --steps optimizer steps; Agora runs have
--rounds rounds after round 0, each of --steps steps; v2 settings restart every round from the initial weights, so
their last round is the same final training as the baselines' single run; v1 continues one schedule across rounds):

- plain: gold rows;  train_union_dev: gold rows ∪ the whole dev set (gold labels);
- pseudo_full: gold ∪ selection part ∪ the whole pool with the teacher's soft labels (pool-size calls);
- random: v2's rounds, but --budget calls on random pool texts (+ the same self-training);
- margin_al: v2's rounds, --budget calls on the pool texts of smallest student margin (+ the same self-training);
- agora_v1: today's Agora (AgoraConfig(agora_version="v1"): dev errors, fixed-MiniLM pool neighbours, hard labels,
  one schedule), --budget calls;
- agora_v2: AgoraConfig defaults, --budget calls;  agora_v2_no_st: without self-training;
- agora_v2_continue: v2 without per-round retraining (decides the `agora_retrain` default on the stopping split).

Paired differences per seed (agora_v2 − each other setting, test accuracy points) are in "paired"; choices
(retraining or not) use the stopping part only.

    flock /tmp/hf_bort_bench.lock nice -n 5 env PYTHONPATH=src python benchmarks/agora_v2.py --tasks rt \\
        --seeds 0 1 --max-minutes 60 --output benchmarks/results/agora_v2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from hf_bort.agora import AgoraConfig, AgoraTrainer  # noqa: E402
from hf_bort.agora.collator import AgoraCollator  # noqa: E402
from hf_bort.agora.labellers import ModelLabeller  # noqa: E402
from hf_bort.agora.selection import stratified_split  # noqa: E402
from hf_bort.assets import load_convention_sentences, load_rotten_tomatoes, packaged_minilm_path  # noqa: E402

MAX_LENGTH = 64
WORK = Path("/tmp/agora_v2")
SETTINGS = (  # run in this order per seed (a --max-minutes stop keeps the first ones)
    "plain",
    "train_union_dev",
    "agora_v2",
    "random",
    "margin_al",
    "agora_v2_no_st",
    "pseudo_full",
    "agora_v1",
    "agora_v2_continue",
)
TASKS = {"rt": load_rotten_tomatoes, "convention": load_convention_sentences}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["rt"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--n", type=int, default=64, help="gold training rows")
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=400, help="teacher calls of the budgeted settings")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of one round / of a final training")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--teacher-size", type=int, default=2000)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores; 1 on a shared, loaded machine)"
    )
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="start no new run after this many minutes (JSON kept)"
    )
    parser.add_argument("--output", default="benchmarks/results/agora_v2.json")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --output (same design arguments required) and skip their (task, n, seed, "
        "setting): the design's seeds, n values and tasks can be filled over several invocations",
    )
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="train nothing: rewrite --output's summary, coverage and retraining choice with this script's code",
    )
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="with --summarise-only: add the runs of these result files (same design arguments; runs of the same "
        "task, n, seed and setting refused) to --output, e.g. two tasks run in parallel into separate files",
    )
    return parser.parse_args()


# Arguments that define the experiment: a resumed file must have been written with the same values.
DESIGN_ARGS = (
    "pool_size", "budget", "rounds", "steps", "lr", "batch_size", "test_size", "teacher_size", "teacher_epochs",
    "student_layers",
)  # fmt: skip
DESIGN = {"n": (64, 256), "seeds": 5, "tasks": ("rt", "convention")}  # issue 21's design


def load_previous(args) -> tuple[list[dict], dict, list[str]]:
    """The runs, teacher logs and commands of an earlier --output, checked against this invocation's design."""
    path = Path(args.output)
    if not args.resume or not path.exists():
        return [], {"teachers": {}}, []
    previous = json.loads(path.read_text())
    old_args = previous["args"]
    clash = {k: (old_args.get(k), getattr(args, k)) for k in DESIGN_ARGS if old_args.get(k) != getattr(args, k)}
    if clash:
        raise SystemExit(f"--resume: {path} was written with other design arguments (old, new): {clash}")
    runs = [{"n": old_args["n"], **run} for run in previous["runs"]]  # files before --resume hold one n
    teachers = previous.get("teachers", {})
    for log in teachers.values():  # pool accuracy keyed "n=<n>/seed=<seed>" (older files: "<seed>")
        log["pool_accuracy"] = {
            (key if key.startswith("n=") else f"n={old_args['n']}/seed={key}"): value
            for key, value in log.get("pool_accuracy", {}).items()
        }
    commands = previous.get("commands") or [previous["command"]]
    return runs, {"teachers": teachers}, commands


def common(args, seed: int) -> dict:
    return dict(
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        weight_decay=0.01,
        max_steps=args.steps,
        seed=seed,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )


@torch.no_grad()
def predict(model, tokenizer, texts: list[str], batch_size: int = 128) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        out.append(model(**enc).logits.argmax(-1))
    return torch.cat(out)


def accuracy(model, tokenizer, texts, labels) -> float:
    return float((predict(model, tokenizer, list(texts)) == torch.tensor(list(labels))).float().mean())


def student(args, seed: int):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(
        packaged_minilm_path(), num_labels=2, num_hidden_layers=args.student_layers
    )


def tokenized(tokenizer, rows: list[dict]) -> list[dict]:
    return [dict(tokenizer(r["text"], truncation=True, max_length=MAX_LENGTH), labels=int(r["label"])) for r in rows]


def fine_tune(args, tokenizer, rows: list[dict], seed: int) -> tuple:
    """A fresh student trained --steps steps on `rows` (plain and train ∪ dev)."""
    model = student(args, seed)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(str(WORK / "plain"), **common(args, seed)),
        train_dataset=tokenized(tokenizer, rows),
        data_collator=AgoraCollator(tokenizer.pad_token_id),
    )
    output = trainer.train()
    return model, {"steps": output.global_step, "final_steps": output.global_step, "teacher_calls": 0}


def teacher_for(args, task: str, tokenizer, rows: list[dict]) -> str:
    path = WORK / f"{task}-teacher-{args.teacher_size}"
    if (path / "config.json").exists():
        return str(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(packaged_minilm_path(), num_labels=2)
    arguments = TrainingArguments(
        str(WORK / "teacher-run"),
        seed=0,
        num_train_epochs=args.teacher_epochs,
        learning_rate=5e-5,
        per_device_train_batch_size=32,
        warmup_ratio=0.1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    Trainer(
        model=model,
        args=arguments,
        train_dataset=tokenized(tokenizer, rows),
        data_collator=AgoraCollator(tokenizer.pad_token_id),
    ).train()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def agora_config(args, setting: str, seed: int) -> AgoraConfig:
    # every v2-style setting retrains each round, as the committed runs did (agora_retrain's default was True then);
    # "agora_v2_continue" is today's default (decided by `retrain_default` below)
    base = dict(
        agora_rounds=args.rounds,
        agora_budget=args.budget,
        agora_max_length=MAX_LENGTH,
        agora_retrain=True,
        **common(args, seed),
    )
    extra = {
        "pseudo_full": dict(
            agora_rounds=1,
            agora_budget=args.pool_size,
            agora_candidates="pool",
            agora_uncertainty="random",
            agora_diversity="none",
            agora_class_cap=None,
            agora_self_training=False,
        ),
        "random": dict(
            agora_candidates="pool", agora_uncertainty="random", agora_diversity="none", agora_class_cap=None
        ),
        "margin_al": dict(
            agora_candidates="pool", agora_uncertainty="margin", agora_diversity="none", agora_class_cap=None
        ),
        "agora_v1": dict(agora_version="v1", agora_sampler="pool", agora_samples_per_error=4),
        "agora_v2": {},
        "agora_v2_no_st": dict(agora_self_training=False),
        "agora_v2_continue": dict(agora_retrain=False),
    }[setting]
    return AgoraConfig(str(WORK / setting), **{**base, **extra})


def run_agora(args, setting, seed, tokenizer, encoder, data, teacher) -> tuple:
    config = agora_config(args, setting, seed)
    trainer = AgoraTrainer(
        model=student(args, seed),
        args=config,
        train_dataset=data["train_tok"],
        eval_dataset=data["dev_tok"],
        processing_class=tokenizer,
        labeller=teacher,
        unlabelled_pool=data["pool_texts"],
        pool_encoder=encoder if setting == "agora_v1" else None,
        pool_encoder_tokenizer=tokenizer if setting == "agora_v1" else None,
    )
    output = trainer.train()
    state = trainer.agora_state
    taught = [row for row in state.augmented if "pool_index" in row]
    pool_gold = data["pool_labels"]

    def gold_share(rows):
        return statistics.mean(int(r["labels"]) == pool_gold[r["pool_index"]] for r in rows) if rows else None

    stats = {
        "steps": output.global_step,
        "final_steps": output.global_step // (config.agora_rounds + 1)
        if config.agora_v2 and config.agora_retrain
        else output.global_step,
        "teacher_calls": state.labeller_calls,
        "teacher_rows_kept": len(taught),
        "teacher_accuracy_on_its_samples": statistics.mean(
            int(r["labels"]) == pool_gold[r["pool_index"]] for r in taught
        )
        if taught
        else None,
        "self_trained_rows": len(state.self_trained),
        "self_training_accuracy": gold_share(state.self_trained),
        "final_train_size": len(trainer.train_dataset),
        "history": [vars(h) for h in trainer.agora_history],
    }
    return trainer.model, stats


def paired_differences(by: dict, seeds: list[int], base: str) -> dict:
    """Test-accuracy differences `base` − every other setting, per seed that ran both (points)."""
    out = {}
    for other in SETTINGS:
        pairs = [s for s in seeds if (base, s) in by and (other, s) in by]
        if other == base or not pairs:
            continue
        diffs = [100 * (by[(base, s)]["test_accuracy"] - by[(other, s)]["test_accuracy"]) for s in pairs]
        out[other] = {
            "seeds": pairs,
            "differences": diffs,
            "mean": statistics.mean(diffs),
            "std": statistics.pstdev(diffs),
            "positive": sum(d > 0 for d in diffs),
        }
    return out


def summarise(runs: list[dict]) -> dict:
    """Per task and gold-row count ("rt", "n=64"): each setting's test accuracy over seeds, and v2's paired
    differences."""
    summary: dict = {}
    for task, n in sorted({(r["task"], r["n"]) for r in runs}):
        rows = [r for r in runs if r["task"] == task and r["n"] == n]
        by = {(r["setting"], r["seed"]): r for r in rows}
        seeds = sorted({r["seed"] for r in rows})
        task_summary: dict = {"settings": {}, "paired_agora_v2_minus": {}}
        for setting in SETTINGS:
            values = [100 * by[(setting, s)]["test_accuracy"] for s in seeds if (setting, s) in by]
            stops = [100 * by[(setting, s)]["stopping_accuracy"] for s in seeds if (setting, s) in by]
            if values:
                task_summary["settings"][setting] = {
                    "seeds": [s for s in seeds if (setting, s) in by],
                    "test_accuracy": values,
                    "mean": statistics.mean(values),
                    "std": statistics.pstdev(values),
                    "stopping_accuracy_mean": statistics.mean(stops),
                    "teacher_calls": [by[(setting, s)]["teacher_calls"] for s in seeds if (setting, s) in by],
                }
        task_summary["paired_agora_v2_minus"] = paired_differences(by, seeds, "agora_v2")
        # the default since `retrain_default` chose continuing: the same targets read against it
        task_summary["paired_agora_v2_continue_minus"] = paired_differences(by, seeds, "agora_v2_continue")
        pairs = [s for s in seeds if ("agora_v2", s) in by and ("agora_v2_continue", s) in by]
        if pairs:
            retrain = statistics.mean(by[("agora_v2", s)]["stopping_accuracy"] for s in pairs)
            cont = statistics.mean(by[("agora_v2_continue", s)]["stopping_accuracy"] for s in pairs)
            task_summary["retrain_choice_on_stopping_split"] = {
                "seeds": pairs,
                "retrain_stopping_accuracy": 100 * retrain,
                "continue_stopping_accuracy": 100 * cont,
            }  # the default is decided pooled over tasks and n: `retrain_default`
        summary.setdefault(task, {})[f"n={n}"] = task_summary
    return summary


def pooled_default(
    runs: list[dict], stopping_rows: dict[str, int], default: str, alternative: str, names: tuple[str, str]
) -> dict | None:
    """
    A v2 default decided on the stopping part only, pooled over every (task, n, seed) that ran both the `default`
    setting (v2 as configured by default) and the `alternative` (v2 with that one switch flipped): the default stays
    unless the alternative beats it by more than one standard error of the pooled stopping accuracy,
    sqrt(p(1 - p) / rows), rows = stopping rows summed over the pairs (the 1-SE rule of compress's augmentation gate).
    `names` = (what the default does, what the alternative does), for the record.
    """
    by = {(r["task"], r["n"], r["seed"], r["setting"]): r for r in runs}
    pairs = sorted(k[:3] for k in by if k[3] == default and (*k[:3], alternative) in by)
    if not pairs:
        return None
    kept = statistics.mean(by[(*k, default)]["stopping_accuracy"] for k in pairs)
    other = statistics.mean(by[(*k, alternative)]["stopping_accuracy"] for k in pairs)
    rows = sum(stopping_rows[task] for task, _, _ in pairs)
    se = (kept * (1 - kept) / rows) ** 0.5
    keep = other - kept <= se
    return {
        "pairs": [f"{task} n={n} seed {seed}" for task, n, seed in pairs],
        f"{names[0]}_stopping_accuracy": 100 * kept,
        f"{names[1]}_stopping_accuracy": 100 * other,
        "one_standard_error": 100 * se,
        "stopping_rows": rows,
        "choice": f"{names[0]} (default kept)" if keep else names[1],
        "why": f"{names[1]} − {names[0]} = {100 * (other - kept):+.2f} points; one standard error {100 * se:.2f}",
    }


def retrain_default(runs: list[dict], stopping_rows: dict[str, int]) -> dict | None:
    """`agora_retrain`'s default: retraining every round against carrying the weights over, on the stopping part."""
    return pooled_default(runs, stopping_rows, "agora_v2", "agora_v2_continue", ("retrain", "continue"))


def self_training_default(runs: list[dict], stopping_rows: dict[str, int]) -> dict | None:
    """`agora_self_training`'s default: v2 with self-training against v2 without it (both retraining; the pinned
    setting these runs used), on the stopping part."""
    names = ("self_training", "no_self_training")
    return pooled_default(runs, stopping_rows, "agora_v2", "agora_v2_no_st", names)


def coverage(runs: list[dict]) -> dict:
    """Which of issue 21's design cells (task × n × 5 seeds, every setting) the file holds."""
    cells = {}
    for task in DESIGN["tasks"]:
        for n in DESIGN["n"]:
            complete = sorted(
                seed
                for seed in {r["seed"] for r in runs if r["task"] == task and r["n"] == n}
                if {r["setting"] for r in runs if (r["task"], r["n"], r["seed"]) == (task, n, seed)} >= set(SETTINGS)
            )
            partial = sorted({r["seed"] for r in runs if r["task"] == task and r["n"] == n} - set(complete))
            cells[f"{task} n={n}"] = {"complete_seeds": complete, "partial_seeds": partial}
    full = all(len(c["complete_seeds"]) >= DESIGN["seeds"] for c in cells.values())
    return {"design": "2 tasks × n ∈ {64, 256} × 5 seeds, every setting", "complete": full, "cells": cells}


def stopping_rows(tasks) -> dict[str, int]:
    """Rows of v2's stopping part per task (the seeded stratified half of the validation split; equal per seed)."""
    rows = {}
    for task in tasks:
        labels = list(TASKS[task](0)["validation"]["label"])
        rows[task] = len(stratified_split(labels, 0.5, 0)[1])
    return rows


def write(args, header: dict, runs: list[dict], started: float, stopped_early: bool, commands: list[str]) -> dict:
    summary = summarise(runs)
    rows = stopping_rows(sorted({r["task"] for r in runs}))
    # the invocation as run; a wrapper (flock, nice) is not visible here, so none is recorded
    command = "python benchmarks/agora_v2.py " + " ".join(sys.argv[1:])
    result = {
        "command": command,
        "commands": [*commands, command],  # every invocation that added runs (--resume), oldest first
        "args": vars(args),
        "coverage": coverage(runs),
        "reduced": {
            "note": "reduced unless coverage.complete: issue 21's design is 5 seeds, n = 64 and 256, two tasks",
            "stopped_by_max_minutes": stopped_early,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "minutes": (time.time() - started) / 60,
        **header,
        "summary": summary,
        "retrain_default": retrain_default(runs, rows),
        "self_training_default": self_training_default(runs, rows),
        "runs": runs,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.output).with_suffix(".json.part")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.output)
    return summary


def main() -> int:
    args = parse_args()
    started = time.time()
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    encoder = AutoModel.from_pretrained(packaged_minilm_path())  # agora_v1's fixed pool encoder
    if args.summarise_only:
        args.resume = True
        previous = json.loads(Path(args.output).read_text())
        runs, header, commands = load_previous(args)
        for other in args.merge:
            more, more_header, more_commands = load_previous(argparse.Namespace(**{**vars(args), "output": other}))
            keys = {(r["task"], r["n"], r["seed"], r["setting"]) for r in runs}
            clash = [k for k in ((r["task"], r["n"], r["seed"], r["setting"]) for r in more) if k in keys]
            if clash:
                raise SystemExit(f"--merge: {other} repeats runs already in {args.output}: {clash[:3]}")
            runs += more
            commands += more_commands
            for task, log in more_header["teachers"].items():
                mine = header["teachers"].setdefault(task, log)
                mine["pool_accuracy"] = {**mine.get("pool_accuracy", {}), **log.get("pool_accuracy", {})}
        started -= 60 * previous["minutes"]  # the file's training minutes, not this call's
        write(args, header, runs, started, previous["reduced"]["stopped_by_max_minutes"], commands)
        return 0
    runs, header, commands = load_previous(args)
    done = {(r["task"], r["n"], r["seed"], r["setting"]) for r in runs}
    stopped = False
    for task in args.tasks:
        splits = TASKS[task](0)
        train_rows = list(splits["train"])
        dev = splits["validation"]
        test = splits["test"].select(range(min(args.test_size, len(splits["test"]))))
        teacher_rows, rest = train_rows[-args.teacher_size :], train_rows[: -args.teacher_size]
        teacher_path = teacher_for(args, task, tokenizer, teacher_rows)
        teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher_path).eval()
        teacher = ModelLabeller(teacher_model, tokenizer, max_length=MAX_LENGTH)
        header["teachers"][task] = {
            "path": teacher_path,
            "train_rows": len(teacher_rows),
            "test_accuracy": accuracy(teacher_model, tokenizer, test["text"], test["label"]),
            "pool_accuracy": header["teachers"].get(task, {}).get("pool_accuracy", {}),
        }
        dev_tok = dev.map(lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)
        for seed in args.seeds:
            todo = [s for s in args.settings if (task, args.n, seed, s) not in done]
            if not todo:
                continue
            order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed)).tolist()
            gold = [rest[i] for i in order[: args.n]]
            pool = [rest[i] for i in order[args.n : args.n + args.pool_size]]
            from datasets import Dataset

            train_tok = Dataset.from_list(gold).map(
                lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True
            )
            data = {
                "train_tok": train_tok,
                "dev_tok": dev_tok,
                "pool_texts": [r["text"] for r in pool],
                "pool_labels": [int(r["label"]) for r in pool],
            }
            header["teachers"][task]["pool_accuracy"][f"n={args.n}/seed={seed}"] = accuracy(
                teacher_model, tokenizer, data["pool_texts"], data["pool_labels"]
            )
            _, stopping = stratified_split(list(dev["label"]), 0.5, seed)  # the split v2 makes (same seed)
            stop_texts = [dev[i]["text"] for i in stopping]
            stop_labels = [dev[i]["label"] for i in stopping]
            for setting in todo:
                minutes = (time.time() - started) / 60
                if args.max_minutes is not None and minutes > args.max_minutes:
                    stopped = True
                    break
                tick = time.time()
                if setting == "plain":
                    model, stats = fine_tune(args, tokenizer, gold, seed)
                elif setting == "train_union_dev":
                    model, stats = fine_tune(args, tokenizer, gold + list(dev), seed)
                else:
                    model, stats = run_agora(args, setting, seed, tokenizer, encoder, data, teacher)
                run = {
                    "task": task,
                    "n": args.n,
                    "seed": seed,
                    "setting": setting,
                    "test_accuracy": accuracy(model, tokenizer, test["text"], test["label"]),
                    "stopping_accuracy": accuracy(model, tokenizer, stop_texts, stop_labels),
                    "seconds": time.time() - tick,
                    **stats,
                }
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "history"}), flush=True)
                write(args, header, runs, started, stopped, commands)
            if stopped:
                break
        if stopped:
            break
    summary = write(args, header, runs, started, stopped, commands)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
