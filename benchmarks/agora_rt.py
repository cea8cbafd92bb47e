"""
Agora on Rotten Tomatoes polarity, settings S1 and S2 of issue 4.

Student: the packaged all-MiniLM-L6-v2 with a fresh classification head, max length 64, batch 16, AdamW lr --lr,
warm-up 10%, weight decay 0.01. Every fine-tuning run (and every Agora round) lasts
`max(--min-epochs, ceil(--min-examples / n))` epochs of its original training set of n rows. Test accuracy on the
first --test-size rows of the RT test split, which Agora never sees. The pool is --pool-size RT train texts outside
the n training rows (their labels are never read); the pool sampler embeds it with the packaged MiniLM (mean pooling).

S1 (the labeller learns from train ∪ dev only), per n and seed:
- plain: fine-tune on train;  train ∪ dev: fine-tune on train ∪ dev (this model is also the labeller);
- agora: train on train, find dev errors, draw pool neighbours, label them with the train ∪ dev model, add, repeat.

S2 (a teacher exists), per n and seed. Labeller: MiniLM fine-tuned on all 10,252 labelled RT train reviews
(--labeller-path, e.g. OUT/source-finetuned of benchmarks/compress_rt.py, same recipe: 3 epochs, lr 5e-5,
batch 32, max length 64; trained here when not given):
- pseudo-label: label the whole pool with the labeller (pool-size calls), fine-tune on train ∪ labelled pool;
- agora: as in S1 but with this labeller, at most --s2-budget-share × pool-size labeller calls;
- random: label a random pool subset of as many texts as Agora's labeller calls, fine-tune on train ∪ that subset
  for as many steps as the Agora run took (tells whether sampling *near the errors* is what helps).

Ablations and curves (S2): `--s2-budget-share 0.05 0.1 0.5` runs Agora and the random subset at several labeller
budgets (one pseudo-label baseline per seed; summary keys "n@share"); `--pool-encoder student` searches neighbours in
the student's own sentence space, `--pool-encoder random` draws the same number of pool texts at random (same rounds,
schedule and calls: separates *where* Agora samples from *how* it trains); `--retrain` also fine-tunes a fresh
student on train + Agora's accepted samples with the baselines' schedule; `--agora-only` skips the baselines.

    flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/agora_rt.py --setting S1
    flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/agora_rt.py --setting S2 \
        --labeller-path /tmp/ose_student_full/source-finetuned --output benchmarks/results/agora_rt_s2.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
from hf_bort.agora.samplers import PoolSampler  # noqa: E402
from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402

MAX_LENGTH = 64
WORK = Path("/tmp/agora_rt")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=("S1", "S2"), default="S1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dev-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples-per-error", type=int, default=4)
    parser.add_argument("--confidence-threshold", type=float, default=0.0)
    parser.add_argument(
        "--pool-encoder",
        choices=("fixed", "student", "random"),
        default="fixed",
        help="sentence space of the pool sampler: the packaged MiniLM (pool embedded once) or the student being "
        "trained (pool re-embedded every round); 'random' is an ablation: as many unused pool texts per round as "
        "Agora would draw, chosen at random instead of near the errors (same rounds, schedule and calls)",
    )
    parser.add_argument("--max-errors", type=int, default=None, help="AgoraConfig.agora_max_errors (per round)")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="also fine-tune a fresh student on train + Agora's accepted samples, for as many steps as the Agora run "
        "('agora_retrain': Agora picks the data, training follows the baselines' schedule)",
    )
    parser.add_argument(
        "--agora-only",
        action="store_true",
        help="skip the baselines (exploring Agora settings; compare with a full run's baselines on the same splits)",
    )
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument("--min-examples", type=int, default=1600)
    parser.add_argument(
        "--s2-budget-share",
        type=float,
        nargs="+",
        default=[0.2],
        help="S2: Agora's labeller calls / pool size; several values give an accuracy-vs-calls curve",
    )
    parser.add_argument("--labeller-path", default=None, help="S2: a MiniLM fine-tuned on the 10,252 RT reviews")
    parser.add_argument("--output", default=None, help="default benchmarks/results/agora_rt[_s2].json")
    args = parser.parse_args()
    if any(n < 1 for n in args.sizes):
        parser.error(f"--sizes must be positive, got {args.sizes}")
    if not all(0.0 < share <= 1.0 for share in args.s2_budget_share):
        parser.error(f"--s2-budget-share must be in (0, 1], got {args.s2_budget_share}")
    if args.agora_only and args.setting != "S2":
        parser.error("--agora-only needs --setting S2 (in S1 the train ∪ dev baseline model is the labeller)")
    if args.max_errors is not None and args.max_errors < 1:
        parser.error(f"--max-errors must be >= 1, got {args.max_errors}")
    if args.labeller_path and not Path(args.labeller_path, "config.json").exists():
        parser.error(f"--labeller-path {args.labeller_path} holds no config.json (a saved classifier expected)")
    if args.output is None:
        args.output = f"benchmarks/results/agora_rt{'' if args.setting == 'S1' else '_s2'}.json"
    return args


def common(args, n_rows: int) -> dict:
    epochs = max(args.min_epochs, math.ceil(args.min_examples / n_rows))
    return dict(
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        weight_decay=0.01,
        num_train_epochs=epochs,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )


@torch.no_grad()
def accuracy(model, tokenizer, texts, labels, batch_size=128) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        correct += (model(**enc).logits.argmax(-1) == torch.tensor(labels[start : start + batch_size])).sum().item()
    return correct / len(texts)


def student(seed):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(packaged_minilm_path(), num_labels=2)


def fine_tune(args, tokenizer, rows: list[dict], seed: int, name: str, max_steps: int = -1):
    """Fine-tunes a fresh student on `rows` (`text` + `label`, or tokenized with `labels`) for `common`'s epochs, or
    `max_steps` when > 0."""
    model = student(seed)

    def tokenized(row: dict) -> dict:  # Agora's accepted samples come tokenized already
        if "input_ids" in row:
            return row
        return dict(tokenizer(row["text"], truncation=True, max_length=MAX_LENGTH), labels=row["label"])

    data = [tokenized(r) for r in rows]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(str(WORK / name), seed=seed, max_steps=max_steps, **common(args, len(rows))),
        train_dataset=data,
        data_collator=AgoraCollator(tokenizer.pad_token_id),
    )
    tick = time.perf_counter()
    output = trainer.train()
    return model, time.perf_counter() - tick, output.global_step


class RandomPoolSampler(PoolSampler):
    """Ablation of the pool sampler: `n` unused pool texts per error, drawn at random rather than near the error."""

    def sample(self, errors, model, n, generator, exclude=frozenset()):
        free = [i for i in range(len(self.texts)) if i not in exclude]
        order = torch.randperm(len(free), generator=generator)[: n * len(errors)].tolist()
        return self.samples_for([(k // n, free[i]) for k, i in enumerate(order)])


def run_agora(args, tokenizer, encoder, train_tok, dev_tok, labeller, pool, seed, budget=None):
    agora_args = AgoraConfig(
        str(WORK / "agora"),
        seed=seed,
        agora_rounds=args.rounds,
        agora_sampler="pool",
        agora_samples_per_error=args.samples_per_error,
        agora_confidence_threshold=args.confidence_threshold,
        agora_budget=budget,
        agora_max_errors=args.max_errors,
        agora_max_length=MAX_LENGTH,
        **common(args, len(train_tok)),
    )
    trainer = AgoraTrainer(
        model=student(seed),
        args=agora_args,
        train_dataset=train_tok,
        eval_dataset=dev_tok,
        processing_class=tokenizer,
        labeller=labeller,
        unlabelled_pool=pool,
        sampler=RandomPoolSampler(pool, tokenizer=tokenizer, max_length=MAX_LENGTH)
        if args.pool_encoder == "random"
        else None,
        pool_encoder=encoder if args.pool_encoder == "fixed" else None,
        pool_encoder_tokenizer=tokenizer if args.pool_encoder == "fixed" else None,
    )
    tick = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - tick
    history = trainer.agora_history
    callback = sum(h.seconds for h in history)
    labelling = sum(h.labeller_seconds for h in history)
    return (
        trainer.model,
        trainer.agora_state.augmented,
        {
            "agora_seconds": seconds,
            "agora_steps": output.global_step,
            "agora_history": [vars(h) for h in history],
            "labeller_calls": trainer.agora_state.labeller_calls,
            "callback_share": callback / max(1e-9, output.metrics["train_runtime"] - labelling),
            # one-time embedding of the pool by the fixed encoder, before step 1 (not in train_runtime or the callback)
            "pool_index_seconds": trainer.agora_pool_index_seconds,
            "callback_share_with_pool_index": (callback + trainer.agora_pool_index_seconds)
            / max(1e-9, output.metrics["train_runtime"] + trainer.agora_pool_index_seconds - labelling),
        },
    )


def train_labeller(tokenizer, train_rows: list[dict], seed: int) -> str:
    """S2 labeller when none is given: 3 epochs on all labelled RT train reviews, lr 5e-5, batch 32 (~15 min)."""
    path = WORK / "s2-labeller"
    if (path / "config.json").exists():
        return str(path)
    model = student(seed)
    data = [dict(tokenizer(r["text"], truncation=True, max_length=MAX_LENGTH), labels=r["label"]) for r in train_rows]
    arguments = TrainingArguments(
        str(WORK / "s2-labeller-run"),
        seed=seed,
        num_train_epochs=3,
        learning_rate=5e-5,
        per_device_train_batch_size=32,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(
        model=model, args=arguments, train_dataset=data, data_collator=AgoraCollator(tokenizer.pad_token_id)
    ).train()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def pseudo_label_baseline(args, tokenizer, train, pool, labeller, seed, test) -> tuple[dict, list[dict]]:
    """Labels the whole pool (pool-size calls) and fine-tunes on train ∪ labelled pool; returns its fields + labels."""
    run: dict = {}
    tick = time.perf_counter()
    labelled = labeller([{"text": t} for t in pool])
    run["pseudo_label_seconds"] = time.perf_counter() - tick
    pseudo = [{"text": t, "label": y} for t, y in zip(pool, labelled.labels, strict=True)]
    # The pseudo-label baseline sees the whole labelled pool for as many steps as its data needs.
    model, run["pseudo_seconds"], run["pseudo_steps"] = fine_tune(args, tokenizer, train + pseudo, seed, "pseudo")
    run["pseudo_label"] = accuracy(model, tokenizer, test["text"], test["label"])
    run["pseudo_label_calls"] = len(pool)
    return run, pseudo


def random_subset_baseline(args, tokenizer, train, pseudo, agora_stats, seed, test) -> dict:
    """A random pool subset of as many texts as Agora's labeller calls, trained for as many steps as Agora took."""
    run: dict = {}
    calls = agora_stats["labeller_calls"]
    chosen = random.Random(seed).sample(range(len(pseudo)), calls)
    subset = [pseudo[i] for i in chosen]  # same labels the labeller gives, no extra calls needed
    model, run["random_seconds"], run["random_steps"] = fine_tune(
        args, tokenizer, train + subset, seed, "random", max_steps=agora_stats["agora_steps"]
    )
    run["random_subset"] = accuracy(model, tokenizer, test["text"], test["label"])
    run["random_subset_calls"] = calls
    return run


def write_result(args, header: dict, runs: list[dict]) -> dict:
    keys = ("plain", "train_union_dev") if args.setting == "S1" else ("pseudo_label", "random_subset")
    summary = {}
    groups: dict = {}  # n, or "n@budget share" when S2 runs several budgets
    for r in runs:
        several = len(args.s2_budget_share) > 1 and "budget_share" in r
        groups.setdefault(f"{r['n']}@{r['budget_share']:g}" if several else r["n"], []).append(r)
    for group, rows in groups.items():
        summary[group] = {"seeds": [r["seed"] for r in rows]}
        for key in (*keys, "agora", "agora_retrain", "callback_share", "labeller_calls"):
            if not all(key in r for r in rows):  # e.g. baselines skipped by --agora-only
                continue
            scale = 100 if key in (*keys, "agora", "agora_retrain") else 1
            values = [scale * r[key] for r in rows]
            summary[group][key] = {"mean": statistics.mean(values), "std": statistics.pstdev(values)}
    result = {
        "setting": "S1: labeller = MiniLM fine-tuned on train ∪ dev (the train ∪ dev baseline model)"
        if args.setting == "S1"
        else "S2: labeller = MiniLM fine-tuned on the 10,252 labelled RT train reviews",
        "command": "flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/agora_rt.py "
        + " ".join(sys.argv[1:]),
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        **header,
        "summary": summary,
        "runs": runs,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    return summary


def main() -> int:
    args = parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data = load_rotten_tomatoes()
    dev = data["validation"].select(range(args.dev_size))
    test = data["test"].select(range(args.test_size))
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    encoder = AutoModel.from_pretrained(packaged_minilm_path())

    def tokenise(dataset):
        return dataset.map(lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)

    dev_tok = tokenise(dev)
    header: dict = {}
    s2_labeller = None
    if args.setting == "S2":
        labeller_path = args.labeller_path or train_labeller(tokenizer, list(data["train"]), 0)
        s2_model = AutoModelForSequenceClassification.from_pretrained(labeller_path).eval()
        s2_labeller = ModelLabeller(s2_model, tokenizer, max_length=MAX_LENGTH)
        header["labeller"] = {
            "path": labeller_path,
            "test_accuracy": accuracy(s2_model, tokenizer, test["text"], test["label"]),
            "dev_accuracy": accuracy(s2_model, tokenizer, dev["text"], dev["label"]),
        }
        print(json.dumps(header), flush=True)

    runs = []
    summary: dict = {}

    def record(run: dict, train_rows: list[dict], model, augmented: list[dict], stats: dict) -> None:
        nonlocal summary
        run.update(stats)
        run["agora"] = accuracy(model, tokenizer, test["text"], test["label"])
        if args.retrain:
            model, run["retrain_seconds"], run["retrain_steps"] = fine_tune(
                args, tokenizer, train_rows + augmented, run["seed"], "retrain", max_steps=stats["agora_steps"]
            )
            run["agora_retrain"] = accuracy(model, tokenizer, test["text"], test["label"])
        print(json.dumps({k: v for k, v in run.items() if k != "agora_history"}), flush=True)
        runs.append(run)
        summary = write_result(args, header, runs)  # after every run: a stopped run keeps what it measured

    for n in args.sizes:
        for seed in args.seeds:
            pool_all = data["train"].shuffle(seed=seed)
            train = list(pool_all.select(range(n)))
            pool = pool_all.select(range(n, n + args.pool_size))["text"]  # labels never read
            train_tok = tokenise(pool_all.select(range(n)))
            run: dict = {"n": n, "seed": seed}

            if args.setting == "S1":
                plain, run["plain_seconds"], run["plain_steps"] = fine_tune(args, tokenizer, train, seed, "plain")
                run["plain"] = accuracy(plain, tokenizer, test["text"], test["label"])
                union, run["union_seconds"], run["union_steps"] = fine_tune(
                    args, tokenizer, train + list(dev), seed, "union"
                )
                run["train_union_dev"] = accuracy(union, tokenizer, test["text"], test["label"])
                labeller = (union, tokenizer)
                record(run, train, *run_agora(args, tokenizer, encoder, train_tok, dev_tok, labeller, pool, seed))
                continue
            pseudo = None
            if not args.agora_only:
                fields, pseudo = pseudo_label_baseline(args, tokenizer, train, pool, s2_labeller, seed, test)
                run.update(fields)
            for share in args.s2_budget_share:
                budget = max(1, int(share * len(pool)))
                model, augmented, stats = run_agora(
                    args, tokenizer, encoder, train_tok, dev_tok, s2_labeller, pool, seed, budget=budget
                )
                share_run = {**run, "budget_share": share}
                if pseudo is not None:
                    share_run.update(random_subset_baseline(args, tokenizer, train, pseudo, stats, seed, test))
                record(share_run, train, model, augmented, stats)

    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
