"""
Agora on Rotten Tomatoes polarity (setting S1: the labeller learns only from train ∪ dev).

For each training-set size n and seed: plain fine-tuning on train; fine-tuning on train ∪ dev (which is also the
labeller); Agora (pool sampler: nearest neighbours of the dev errors among unlabelled RT train texts, in the packaged
MiniLM's mean-pooled sentence-embedding space; labels by the train ∪ dev model). Student: the packaged MiniLM with a
fresh classification head, max length 64. Test accuracy on the held-out RT test split (never seen by Agora).

    flock /tmp/hf_bort_cpu.lock python benchmarks/agora_rt.py --sizes 64 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
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
from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402

MAX_LENGTH = 64


def common(args, n_rows: int) -> dict:
    # At least `min_examples` examples seen and at least `min_epochs` epochs.
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


def fine_tune(args, rows, seed, out):
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    model = student(seed)
    data = [dict(tokenizer(r["text"], truncation=True, max_length=MAX_LENGTH), labels=r["label"]) for r in rows]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(out, seed=seed, **common(args, len(rows))),
        train_dataset=data,
        data_collator=AgoraCollator(tokenizer.pad_token_id),
    )
    tick = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dev-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples-per-error", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument("--min-examples", type=int, default=640)
    parser.add_argument("--output", default="benchmarks/results/agora_rt.json")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    data = load_rotten_tomatoes()
    dev = data["validation"].select(range(args.dev_size))
    test = data["test"].select(range(args.test_size))
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    encoder = AutoModel.from_pretrained(packaged_minilm_path())
    dev_tok = dev.map(lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)
    runs = []
    for n in args.sizes:
        for seed in args.seeds:
            pool_all = data["train"].shuffle(seed=seed)
            train = pool_all.select(range(n))
            unlabelled = pool_all.select(range(n, n + args.pool_size))["text"]  # labels never read
            train_tok = train.map(lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)
            run = {"n": n, "seed": seed}
            plain, run["plain_seconds"] = fine_tune(args, list(train), seed, "/tmp/agora_rt/plain")
            run["plain"] = accuracy(plain, tokenizer, test["text"], test["label"])
            union, run["union_seconds"] = fine_tune(args, list(train) + list(dev), seed, "/tmp/agora_rt/union")
            run["train_union_dev"] = accuracy(union, tokenizer, test["text"], test["label"])
            agora_args = AgoraConfig(
                "/tmp/agora_rt/agora",
                seed=seed,
                agora_rounds=args.rounds,
                agora_sampler="pool",
                agora_samples_per_error=args.samples_per_error,
                agora_max_length=MAX_LENGTH,
                **common(args, n),
            )
            trainer = AgoraTrainer(
                model=student(seed),
                args=agora_args,
                train_dataset=train_tok,
                eval_dataset=dev_tok,
                processing_class=tokenizer,
                labeller=(union, tokenizer),
                unlabelled_pool=unlabelled,
                pool_encoder=encoder,
                pool_encoder_tokenizer=tokenizer,
            )
            tick = time.perf_counter()
            output = trainer.train()
            run["agora_seconds"] = time.perf_counter() - tick
            run["agora"] = accuracy(trainer.model, tokenizer, test["text"], test["label"])
            history = trainer.agora_history
            run["agora_history"] = [vars(h) for h in history]
            run["labeller_calls"] = trainer.agora_state.labeller_calls
            callback = sum(h.seconds for h in history)
            labelling = sum(h.labeller_seconds for h in history)
            run["callback_share"] = callback / max(1e-9, output.metrics["train_runtime"] - labelling)
            print(json.dumps({k: v for k, v in run.items() if k != "agora_history"}), flush=True)
            runs.append(run)

    summary = {}
    for n in args.sizes:
        rows = [r for r in runs if r["n"] == n]
        summary[n] = {}
        for key in ("plain", "train_union_dev", "agora", "callback_share", "labeller_calls"):
            values = [100 * r[key] if key in ("plain", "train_union_dev", "agora") else r[key] for r in rows]
            summary[n][key] = {"mean": statistics.mean(values), "std": statistics.pstdev(values)}
    result = {
        "setting": "S1: labeller = MiniLM fine-tuned on train ∪ dev (the train ∪ dev baseline model)",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "summary": summary,
        "runs": runs,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
