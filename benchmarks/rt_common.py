"""
Helpers of the TextPruner baseline (`textpruner_rt.py`): the RT splits, its fine-tuning and accuracy, latency and
reload checks. They were the helpers of `ose_student_rt.py`, whose student recipe now lives in the library
(`hf_bort.compress`; `benchmarks/compress_rt.py` is its thin caller). The committed `ose_student_rt*.json` results
were produced by `benchmarks/ose_student_rt.py` at commit 02f0e4f.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from hf_bort.assets import load_rotten_tomatoes  # noqa: E402
from hf_bort.compress.latency import machine_info  # noqa: E402,F401  (used by textpruner_rt)
from hf_bort.compress.latency import time_interleaved as measure_latency  # noqa: E402,F401
from hf_bort.ose import (  # noqa: E402
    DistillationConfig,
    DistillationTrainer,
)

RESULTS = Path(__file__).parent / "results"
REFERENCE_LENGTH = 128  # the length OSE's î uses


def run_settings(args: argparse.Namespace) -> dict:
    """The Trainer settings every training run of this benchmark shares (CPU, seeds, no checkpoints, quiet logs)."""
    return dict(
        group_by_length=args.group_by_length,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=50,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def accuracy(trainer: Trainer, dataset) -> float:
    prediction = trainer.predict(dataset)
    return float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())


def finetune(
    model: nn.Module, name: str, data: dict, tokenizer, args: argparse.Namespace, teacher: nn.Module | None = None
) -> dict:
    """
    The same recipe for every model: AdamW, linear decay, no warm-up, dynamic padding. With a `teacher` (the
    fine-tuned source) the loss is `DistillationTrainer`'s task distillation, alpha_ce · CE + alpha_kd · T²·KL.
    """
    config_class = TrainingArguments if teacher is None else DistillationConfig
    extra = (
        {}
        if teacher is None
        else {
            "distillation_objective": "logits",
            "alpha_ce": args.kd_alpha_ce,
            "alpha_kd": args.kd_alpha_kd,
            "temperature": args.kd_temperature,
            "remove_unused_columns": True,
        }
    )
    training_args = config_class(
        **extra,
        output_dir=str(Path(args.work_dir) / f"ft-{name}"),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128,
        weight_decay=0.0,
        warmup_ratio=0.0,
        lr_scheduler_type="linear",
        **run_settings(args),
    )
    collator = DataCollatorWithPadding(tokenizer)
    kwargs = {} if teacher is None else {"teacher": teacher}
    trainer_class = Trainer if teacher is None else DistillationTrainer
    trainer = trainer_class(
        model=model, args=training_args, train_dataset=data["train"], data_collator=collator, **kwargs
    )
    start = time.perf_counter()
    output = trainer.train() if args.epochs > 0 else None
    train_wall = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    result = {
        "train_wall_s": train_wall,
        "train_steps": output.global_step if output else 0,
        "train_loss": output.training_loss if output else None,
        "validation_accuracy": accuracy(trainer, data["validation"]),
        "test_accuracy": accuracy(trainer, data["test"]),
    }
    result["eval_wall_s"] = time.perf_counter() - start
    print(f"[{name}] {result}", flush=True)
    return result


def latency_inputs(config, batch_size: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, config.vocab_size, (batch_size, length), generator=generator)
    ids[:, 0], ids[:, -1] = 101, 102
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "type_vocab_size", 0):
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def torch_runner(model: nn.Module, inputs: dict):
    def run():
        with torch.inference_mode():
            model(**inputs)

    return run


def ort_runner(model_dir: str, model: nn.Module, tokenizer, inputs: dict, threads: int):
    import onnxruntime

    from hf_bort.exporters import export_onnx

    result = export_onnx(model, model_dir, task="text-classification", tokenizer=tokenizer, overwrite=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(result.onnx_path, options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {k: v.numpy() for k, v in inputs.items() if k in names}

    def run():
        session.run(None, feed)

    return run, result.max_abs_diff


RELOAD_SNIPPET = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(path)
with torch.no_grad():
    logits = model(**tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
imported = "hf_bort" in sys.modules
print(json.dumps({"class": type(model).__name__, "logits": logits.tolist(), "hf_bort_imported": imported}))
"""


def reload_check(path: Path, model: nn.Module, tokenizer, texts: list[str]) -> dict:
    """Loads `path` in a fresh interpreter with plain transformers (no hf_bort on the path) and compares logits."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD_SNIPPET, str(path), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=600,
    )
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-5:]}
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        logits = model.eval()(**batch).logits
    diff = float((torch.tensor(reloaded["logits"]) - logits).abs().max())
    return {
        "ok": diff < 1e-4,
        "loaded_class": reloaded["class"],
        "hf_bort_imported_in_reload_process": reloaded["hf_bort_imported"],
        "max_abs_logit_diff": diff,
        "num_texts": len(texts),
    }


def load_rt_splits(args: argparse.Namespace, tokenizer):
    """RT splits for --seed (cut by --max-train / --max-eval), raw and tokenised (a "labels" column)."""
    raw = load_rotten_tomatoes(seed=args.seed)
    if args.max_train:
        raw["train"] = raw["train"].select(range(min(args.max_train, len(raw["train"]))))
    if args.max_eval:
        for split in ("validation", "test"):
            raw[split] = raw[split].select(range(min(args.max_eval, len(raw[split]))))
    data = raw.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=args.max_length),
        batched=True,
        remove_columns=["text"],
    )
    return raw, data.rename_column("label", "labels")
