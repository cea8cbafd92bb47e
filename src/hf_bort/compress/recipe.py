"""
The training and checking steps of `compress`, each usable alone: fine-tune a source, distil hidden states, task
distillation, evaluation and the plain-transformers reload check (the latency comparison: `compress/latency.py`).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import _device
from ..ose.distill import DistillationConfig, DistillationTrainer, add_teacher_logits, hidden_state_loss
from ..ose.logits import predict
from .latency import machine_info, measure_latency, time_interleaved  # noqa: F401  (their home before the split)
from .quiet import nest_trainer_progress


def tokenise(dataset, tokenizer, max_length: int, *, keep_labels: bool = True, pair_column: str | None = None):
    """
    `text` -> input ids (truncated to `max_length`), `label` -> `labels`; other columns dropped. With
    `pair_column`, (`text`, that column) are tokenised as one pair (`token_type_ids` mark the second text where the
    tokenizer gives them; truncation takes from the longer text first).
    """
    columns = [c for c in dataset.column_names if c != "label" or not keep_labels]
    out = dataset.map(
        lambda batch: tokenizer(
            batch["text"], batch[pair_column] if pair_column else None, truncation=True, max_length=max_length
        ),
        batched=True,
        remove_columns=columns,
    )
    return out.rename_column("label", "labels") if keep_labels else out


def encode(tokenizer, examples: list[Any], max_length: int, **kwargs: Any):
    """`examples` (texts, or [text, text_pair] pairs) through `tokenizer`, padded and truncated, as tensors."""
    second = None
    if examples and isinstance(examples[0], (list, tuple)):
        examples, second = [a for a, _ in examples], [b for _, b in examples]
    return tokenizer(
        examples, second, padding=True, truncation=True, max_length=max_length, return_tensors="pt", **kwargs
    )


def _version_settings(warmup: float) -> dict[str, Any]:
    """Length-grouped batches and a warm-up fraction under the names of the installed transformers (4.57 or 5.x)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    out: dict[str, Any] = {}
    if "group_by_length" in names:
        out["group_by_length"] = True
    else:
        out["train_sampling_strategy"] = "group_by_length"
    if "warmup_ratio" in names:
        out["warmup_ratio"] = warmup
    else:  # 5.x: a float warmup_steps in [0, 1) is a fraction of the steps
        out["warmup_steps"] = warmup
    return out


def _trainer_settings(seed: int, output_dir: Path, show_progress: bool, warmup: float = 0.0) -> dict[str, Any]:
    """
    The Trainer settings every run of the recipe shares (CPU or GPU as available, seeds, no checkpoints). Batches are
    pinned only when they go to a CUDA device (on the CPU torch warns about `pin_memory` on every dataloader).
    """
    from .._device import compute_device

    return dict(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        report_to=[],
        save_strategy="no",
        logging_steps=50,
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=compute_device().type == "cuda",
        per_device_eval_batch_size=128,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        **_version_settings(warmup),
    )


def classifier_from_encoder(path: str, label_names: list[str], seed: int) -> nn.Module:
    """
    A sequence classifier on the pretrained encoder at `path` with a new head for `label_names`, drawn after
    `set_seed(seed)`: the head transformers initialises at random is the same for the same seed, whatever the process
    drew before (it was drawn before the seed was set, so two identical runs differed).
    """
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(seed)
    id2label = dict(enumerate(label_names))
    return AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(label_names), id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )


def finetune(
    model: nn.Module,
    train_dataset,
    tokenizer,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    seed: int,
    work_dir: Path,
    show_progress: bool = True,
    teacher: nn.Module | None = None,
    alpha_ce: float = 0.5,
    alpha_kd: float = 0.5,
    temperature: float = 2.0,
    eval_dataset=None,
    best_metric: str = "macro_f1",
    patience: int | None = None,
    patience_after_epochs: float = 0.0,
    max_steps: int = -1,
    eval_steps: int | None = None,
    eval_on_start: bool = False,
    compute_metrics: Any = None,
    cache_teacher_logits: bool = False,
) -> dict[str, Any]:
    """
    Fine-tunes `model` on tokenised `train_dataset` (AdamW, linear decay, no warm-up, dynamic padding). With a
    `teacher` the loss is task distillation (`alpha_ce`·CE + `alpha_kd`·T²·KL to the teacher's logits). With a
    tokenised `eval_dataset` (dev) it is evaluated every epoch and the best epoch by `best_metric` is the model
    returned (`compress/best_dev.py`); `patience` epochs without improvement (counted after the first
    `patience_after_epochs`) stop the training early. `max_steps` > 0 trains that many optimizer steps instead of
    `epochs`; `eval_steps` evaluates (and keeps the best) every that many steps instead of every epoch;
    `eval_on_start` also evaluates the starting weights (`dev_at_start`, in the same dev batches; never kept by the
    Trainer itself). `compute_metrics` replaces the dev scores (`best_dev.compute_metrics`); it gets the inputs too
    (`include_for_metrics=["inputs"]`). `cache_teacher_logits` runs the `teacher` once over the training rows
    (`ose.distill.add_teacher_logits`) instead of on every batch of every epoch: the same loss, worth it when the rows
    are read more than once.
    Returns steps, training loss and wall time (and the kept epoch with the dev scores of each epoch).
    """
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    from . import best_dev

    set_seed(seed)
    settings = _trainer_settings(seed, work_dir, show_progress)
    extra: dict[str, Any] = {}
    if eval_dataset is not None:  # epoch checkpoints in a folder of this run alone, deleted afterwards
        checkpoints = Path(work_dir) / "best-dev"
        shutil.rmtree(checkpoints, ignore_errors=True)
        settings.update(best_dev.trainer_settings(best_metric, eval_steps), output_dir=str(checkpoints))
        settings["eval_on_start"] = eval_on_start
        if compute_metrics is not None:
            settings["include_for_metrics"] = ["inputs"]
        extra = dict(
            eval_dataset=eval_dataset,
            compute_metrics=compute_metrics or best_dev.compute_metrics,
            callbacks=best_dev.callbacks(patience, patience_after_epochs),
        )
    elif patience:
        raise ValueError("Early stopping (`patience`) needs an `eval_dataset` (the dev split).")
    settings["max_steps"] = max_steps
    cached_for = None
    if cache_teacher_logits:
        if teacher is None:
            raise ValueError("`cache_teacher_logits` needs a `teacher`.")
        cache_start = time.perf_counter()
        accepted = set(inspect.signature(model.forward).parameters) | {"labels"}  # what Trainer would keep
        train_dataset = train_dataset.select_columns([c for c in train_dataset.column_names if c in accepted])
        train_dataset = add_teacher_logits(train_dataset, teacher, DataCollatorWithPadding(tokenizer))
        cached_for = {"rows": len(train_dataset), "wall_s": time.perf_counter() - cache_start}
    if teacher is None:
        args = TrainingArguments(
            num_train_epochs=epochs, learning_rate=learning_rate, per_device_train_batch_size=batch_size, **settings
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            **extra,
        )
    else:
        args = DistillationConfig(
            distillation_objective="logits",
            alpha_ce=alpha_ce,
            alpha_kd=alpha_kd,
            temperature=temperature,
            remove_unused_columns=cached_for is None,  # the cached logits column is read by the trainer
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            **settings,
        )
        trainer = DistillationTrainer(
            model=model,
            teacher=teacher,
            args=args,
            train_dataset=train_dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            **extra,
        )
    nest_trainer_progress(trainer)  # its bars under the stage bar (compress/quiet.py)
    start = time.perf_counter()
    output = trainer.train()
    model.eval()
    kept, gold = {}, "BCE" if getattr(model.config, "num_labels", 2) == 1 else "CE"  # BCE: one logit (ose/logits.py)
    if eval_dataset is not None:
        kept = best_dev.best_epoch_record(trainer, best_metric)
        shutil.rmtree(checkpoints, ignore_errors=True)
    return {
        **kept,
        "steps": output.global_step,
        "train_loss": output.training_loss,
        "epochs": epochs if max_steps <= 0 else None,
        **({"max_steps": max_steps} if max_steps > 0 else {}),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "loss": "cross-entropy" if teacher is None else f"{alpha_ce}·{gold} + {alpha_kd}·T²·KL (T={temperature})",
        **({"teacher_logits_cached": cached_for} if cached_for else {}),
        "wall_s": time.perf_counter() - start,
    }


def distil_hidden_states(
    student: nn.Module,
    teacher: nn.Module,
    texts_dataset,
    heldout_dataset,
    tokenizer,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    seed: int,
    work_dir: Path,
    show_progress: bool = True,
) -> dict[str, Any]:
    """
    Hidden-state distillation of an extracted `student` from `teacher` on tokenised texts (labels unused), with
    [`DistillationTrainer`]'s projected relative error; the held-out loss before and after is reported.
    """
    from transformers import DataCollatorWithPadding, set_seed

    set_seed(seed)
    columns = [c for c in texts_dataset.column_names if c != "labels"]
    args = DistillationConfig(
        distillation_objective="hidden",
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        **_trainer_settings(seed, work_dir, show_progress, warmup=0.01),
    )
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        args=args,
        train_dataset=texts_dataset.select_columns(columns),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    heldout = _batches(
        heldout_dataset.select_columns([c for c in heldout_dataset.column_names if c != "labels"]), tokenizer, 64
    )
    before = _heldout_hidden_loss(trainer, heldout)
    nest_trainer_progress(trainer)  # its bars under the stage bar (compress/quiet.py)
    start = time.perf_counter()
    output = trainer.train()
    wall = time.perf_counter() - start
    after = _heldout_hidden_loss(trainer, heldout)
    student.eval()
    return {
        "steps": output.global_step,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "heldout_loss_before": before,
        "heldout_loss_after": after,
        "wall_s": wall,
    }


def extract_and_distil(
    teacher: nn.Module,
    candidate,
    train_dataset,
    heldout_dataset,
    tokenizer,
    *,
    seed: int,
    layer_selection: str = "importance",
    distill_epochs: float = 2.0,
    distill_learning_rate: float = 1e-4,
    batch_size: int = 32,
    calibration_texts: int = 512,
    work_dir: Path,
    show_progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """
    Extracts `candidate` from the Bort `teacher` (activation importance on `calibration_texts` shuffled training
    texts, the teacher's classifier sliced with it) and, when `distill_epochs` > 0, distils its hidden states from
    the teacher on the training texts. Returns the student and a record of what was kept and how training went.
    """
    from ..ose.extract import compute_importance, extract_subnetwork

    texts = train_dataset.shuffle(seed=seed).select(range(min(calibration_texts, len(train_dataset))))
    calibration = _batches(texts.remove_columns([c for c in ("labels",) if c in texts.column_names]), tokenizer, 32)
    importance = compute_importance(teacher, calibration, seed=seed)
    torch.manual_seed(seed)
    student = extract_subnetwork(teacher, candidate, importance, layer_selection=layer_selection)
    plan = student.ose_plan
    record: dict[str, Any] = {
        "layers_kept": plan.layers,
        "heads_kept_per_layer": [len(h) for h in plan.heads],
        "neurons_kept_per_layer": [len(n) for n in plan.neurons],
        "hidden_dims_kept": len(plan.dims),
        "calibration_texts": len(texts),
    }
    if distill_epochs > 0:
        record["distillation"] = distil_hidden_states(
            student,
            teacher,
            train_dataset,
            heldout_dataset,
            tokenizer,
            epochs=distill_epochs,
            learning_rate=distill_learning_rate,
            batch_size=batch_size,
            seed=seed,
            work_dir=work_dir,
            show_progress=show_progress,
        )
    return student, record


def _batches(dataset, tokenizer, batch_size: int) -> list[dict[str, torch.Tensor]]:
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    rows = [dataset[i] for i in range(len(dataset))]
    return [collator(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)]


def _heldout_hidden_loss(trainer: DistillationTrainer, batches: list[dict[str, torch.Tensor]]) -> float:
    model = trainer.model
    was_training = model.training
    model.eval()
    total = 0.0
    device = next(model.parameters()).device  # where the Trainer (accelerate) put student, teacher and projection
    with torch.no_grad():
        for batch in batches:
            batch = _device.to_device(batch, device)
            teacher = trainer.teacher(**batch, output_hidden_states=True).hidden_states[-1]
            student = model(**batch, output_hidden_states=True).hidden_states[-1]
            total += float(hidden_state_loss(student, teacher, batch["attention_mask"], trainer.projection))
    model.train(was_training)
    return total / max(1, len(batches))


def evaluate(model: nn.Module, dataset, tokenizer, batch_size: int = 128) -> dict[str, float]:
    """
    Accuracy and macro-F1 of a classifier on a tokenised split (`labels` column), computed on
    [`hf_bort._device.compute_device`] (the model is moved there); `logit > 0` predicts for a single output.
    """
    device = _device.compute_device()
    _device.to_device(model, device).eval()
    predictions, labels = [], []
    with torch.no_grad():
        for batch in _batches(dataset, tokenizer, batch_size):
            gold = batch.pop("labels")
            predictions.append(predict(model(**_device.to_device(batch, device)).logits).cpu())
            labels.append(gold)
    from .best_dev import classification_scores

    return classification_scores(torch.cat(predictions).numpy(), torch.cat(labels).numpy())


RELOAD_SNIPPET = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path, texts, max_length = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)  # the tokenizer is a standard one
pairs = None
if texts and isinstance(texts[0], list):  # text pairs: tokenised as (text, text_pair)
    texts, pairs = [a for a, _ in texts], [b for _, b in texts]
with torch.no_grad():
    batch = tok(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    logits = model(**batch).logits
imported = "hf_bort" in sys.modules
record = {"class": type(model).__name__, "logits": logits.tolist(), "hf_bort_imported": imported}
print("HF_BORT_RELOAD " + json.dumps(record))
"""


def run_in_fresh_process(snippet: str, args: list[str], what: str) -> dict[str, Any]:
    """
    Runs `snippet` (Python code printing one `HF_BORT_RELOAD <json>` line) in a fresh interpreter — offline, without
    this process's `PYTHONPATH` (so hf_bort is not importable from a source tree), no standard input — and returns
    that JSON record; `what` names the action in the error raised when it fails.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", snippet, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HF_BORT_RELOAD ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed:\n{proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len("HF_BORT_RELOAD ") :])


def reload_check(path: str | os.PathLike, model: nn.Module, tokenizer, texts: list[Any], max_length: int) -> dict:
    """
    Loads the saved student at `path` in a fresh interpreter with plain transformers (`trust_remote_code=True`, which
    runs the modeling code saved in the checkpoint; hf_bort is not imported there) and compares its logits with
    `model`'s on `texts` (strings, or [text, text_pair] pairs, tokenised as pairs in both processes).
    """
    texts = [list(text) if isinstance(text, (list, tuple)) else text for text in texts]
    reloaded = run_in_fresh_process(
        RELOAD_SNIPPET,
        [str(Path(path).resolve()), json.dumps(texts), str(max_length)],
        f"Reloading {path} with plain transformers",
    )
    with torch.no_grad():
        batch = encode(tokenizer, texts, max_length)
        device = next(model.parameters()).device
        logits = model.eval()(**_device.to_device(dict(batch), device)).logits.cpu()
    difference = float((torch.tensor(reloaded["logits"]) - logits).abs().max())
    return {
        "ok": difference < 1e-4,
        "loaded_class": reloaded["class"],
        "hf_bort_imported_in_reload_process": reloaded["hf_bort_imported"],
        "max_abs_logit_difference": difference,
        "texts": len(texts),
    }
