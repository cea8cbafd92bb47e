"""
The training and checking steps of `compress` for embedding models (`CompressionConfig(task="feature-extraction")`,
driven by [`~hf_bort.compress.tasks.embedding.EmbeddingTask`]), each usable alone: [`encode`] sentence embeddings
through a sentence-transformers head, [`distil_embeddings`] (loss 1 − cos to the teacher's embeddings, optionally plus
the in-batch similarity term: `EMBEDDING_LOSSES` of [`hf_bort.ose.embedding`]),
[`reload_check`] in a fresh process with plain sentence-transformers, [`save_head`] into a sentence-transformers
folder.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import _device

logger = logging.getLogger(__name__)

FUSED_ADAMW_CPU_TORCH = (2, 4)  # the first torch whose fused AdamW runs on the CPU

RELOAD_SNIPPET = """
import json, sys
from sentence_transformers import SentenceTransformer
path, texts = sys.argv[1], json.loads(sys.argv[2])
model = SentenceTransformer(path, device="cpu", trust_remote_code=True)
embeddings = model.encode(texts, convert_to_numpy=True)
record = {"class": type(model[0].auto_model).__name__, "embeddings": embeddings.tolist(),
          "hf_bort_imported": "hf_bort" in sys.modules}
print("HF_BORT_RELOAD " + json.dumps(record))
"""


@torch.no_grad()
def encode(encoder, head, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> torch.Tensor:
    """
    Sentence embeddings of `texts` (on the CPU): `encoder`'s last hidden state through `head` (batched, no gradients),
    computed on [`hf_bort._device.compute_device`] (encoder and head are moved there).
    """
    device = _device.compute_device()
    encoder, head = _device.to_device(encoder, device).eval(), _device.to_device(head, device)
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        inputs = _device.to_device(inputs, device)
        hidden = encoder(**inputs).last_hidden_state
        out.append(head(hidden, inputs["attention_mask"]).cpu())
    return torch.cat(out)


def distil_embeddings(
    encoder,
    head,
    teacher_embeddings: torch.Tensor,
    texts: list[str],
    tokenizer,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    seed: int,
    dev_texts: list[str],
    dev_teacher: torch.Tensor,
    min_steps: int = 0,
    patience: int = 0,
    max_epochs: int | None = None,
    loss: str = "cosine",
    similarity_weight: float | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """
    Trains `encoder` (and `head`'s trainable parameters) so that `head(encoder(text))` matches `teacher_embeddings`
    (one row per text) with the cosine distance 1 − cos: AdamW (fused, as the Trainer stages use it, where the torch
    and device allow: [`adamw`]), linear decay to 0, no warm-up, shuffled batches (seeded), dropout as configured.
    Runs on [`hf_bort._device.compute_device`] (encoder and head are moved there). With `loss="cosine+similarity"`
    the loss adds `similarity_weight` × [`~hf_bort.ose.embedding.similarity_loss`] (the mean squared difference of
    the student's and the teacher's in-batch cosine-similarity matrices, off-diagonal).

    After every epoch (and after a last partial one) the student is scored on `dev_texts` against `dev_teacher` (the
    teacher's dev embeddings) by `spearman_pairwise` of [`~hf_bort.ose.embedding.embedding_agreement`], the stage's
    own dev measure; the best epoch's weights (encoder and the head's trainable parameters; the first epoch of the
    best score) are kept in memory and restored at the end. The run lasts at least `epochs`, raised to
    ceil(`min_steps` / steps per epoch) ([`~hf_bort.compress.best_dev.epochs_for`]), capped at `max_epochs`. With
    `patience` > 0 it goes on past those epochs, stopping when `patience` epochs in a row after them brought no better
    dev score, or at `max_epochs`; the linear decay then runs over `max_epochs` (the planned longest run), so an
    early stop leaves it above 0. With `patience` 0 it trains exactly the minimum epochs and decays over them.
    """
    from tqdm.auto import tqdm

    from ..ose.embedding import EMBEDDING_LOSSES, embedding_agreement, embedding_loss, similarity_loss
    from .best_dev import epochs_for

    if loss not in EMBEDDING_LOSSES:
        raise ValueError(f"`loss` must be one of {EMBEDDING_LOSSES}, got {loss!r}.")
    relational = loss == "cosine+similarity"
    number = isinstance(similarity_weight, (int, float)) and not isinstance(similarity_weight, bool)
    if relational and not (number and similarity_weight > 0):
        raise ValueError(f"`similarity_weight` must be a number > 0 with loss={loss!r}, got {similarity_weight!r}.")
    if not relational and similarity_weight is not None:
        raise ValueError(f"`similarity_weight` applies to loss='cosine+similarity' only, got {similarity_weight!r}.")
    if patience > 0 and max_epochs is None:
        raise ValueError("`patience` > 0 needs `max_epochs` (the longest run, over which the learning rate decays).")
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(texts) // batch_size)
    least = epochs_for(epochs, min_steps, len(texts), batch_size)
    cap = max_epochs * steps_per_epoch if max_epochs is not None else None
    least_steps = max(1, round(least * steps_per_epoch))
    least_steps = min(least_steps, cap) if cap is not None else least_steps
    total = cap if patience > 0 else least_steps
    device = _device.compute_device()
    encoder, head = _device.to_device(encoder, device), _device.to_device(head, device)
    trainable = {name: p for name, p in head.named_parameters() if p.requires_grad}
    parameters = [p for p in encoder.parameters() if p.requires_grad] + list(trainable.values())
    optimizer, optimizer_name = adamw(parameters, learning_rate, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))

    def snapshot() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return (
            {name: value.detach().clone() for name, value in encoder.state_dict().items()},
            {name: p.detach().clone() for name, p in trainable.items()},
        )

    losses, step, start = [], 0, time.perf_counter()
    dev_per_epoch: list[dict[str, Any]] = []
    best, stopped, since_best = None, None, 0
    progress = tqdm(total=total, desc="embedding distillation", disable=not show_progress)
    while stopped is None:
        encoder.train()
        order = torch.randperm(len(texts), generator=generator).tolist()
        for first in range(0, len(order), batch_size):
            if step >= total:
                break
            rows = order[first : first + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            inputs = _device.to_device(inputs, device)
            embeddings = head(encoder(**inputs).last_hidden_state, inputs["attention_mask"])
            target = _device.to_device(teacher_embeddings[rows], device)
            value = embedding_loss(embeddings, target)
            if relational:
                value = value + similarity_weight * similarity_loss(embeddings, target)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            schedule.step()
            losses.append(value.item())
            step += 1
            progress.update(1)
        dev = embedding_agreement(encode(encoder, head, tokenizer, dev_texts, max_length), dev_teacher)
        entry = {"epoch": round(step / steps_per_epoch, 4), "step": step, **dev}
        dev_per_epoch.append(entry)
        if best is None or entry["spearman_pairwise"] > best[0]["spearman_pairwise"]:
            best, since_best = (entry, snapshot()), 0
        elif step > least_steps:  # patience counts only the epochs after the minimum
            since_best += 1
        if step >= total:
            stopped = "max_epochs" if patience > 0 else "min_epochs"
        elif patience > 0 and step >= least_steps and since_best >= patience:
            stopped = "patience"
    progress.close()
    kept, (encoder_state, head_state) = best
    encoder.load_state_dict(encoder_state)
    with torch.no_grad():
        for name, value in head_state.items():
            trainable[name].copy_(value)
    encoder.eval()
    reasons = {
        "min_epochs": "patience 0: trained the minimum epochs (task_epochs, raised by min_steps)",
        "max_epochs": "reached max_epochs",
        "patience": f"{patience} epoch(s) in a row after the minimum without a better dev spearman_pairwise",
    }
    return {
        "steps": step,
        "epochs": round(step / steps_per_epoch, 4),
        "min_epochs": round(least_steps / steps_per_epoch, 4),
        "min_steps": min_steps,
        "max_epochs": max_epochs,
        "patience": patience,
        "planned_steps": total,
        "learning_rate": learning_rate,
        "learning_rate_decay": f"linear to 0 over {total} steps ({'max_epochs' if patience > 0 else 'min epochs'})",
        "batch_size": batch_size,
        "loss": "1 - cos(student, teacher) of the sentence embeddings"
        + (
            f" + {similarity_weight} * mean squared difference of the student's and the teacher's in-batch cosine "
            "similarity matrices (off-diagonal)"
            if relational
            else ""
        ),
        "embedding_loss": loss,
        "optimizer": optimizer_name,
        "train_loss": sum(losses) / max(1, len(losses)),
        "train_loss_last_50": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "best_checkpoint_metric": "spearman_pairwise",
        "dev_per_epoch": dev_per_epoch,
        "best_epoch": kept["epoch"],
        "best_step": kept["step"],
        "best_dev": {name: kept[name] for name in ("mean_cosine", "nearest_neighbour_agreement", "spearman_pairwise")},
        "stopped": stopped,
        "stopped_why": reasons[stopped],
        "stopped_early": stopped == "patience",
        "wall_s": time.perf_counter() - start,
    }


def adamw(parameters: list[torch.nn.Parameter], learning_rate: float, device: torch.device):
    """
    `torch.optim.AdamW` over `parameters` and its name in the record: the fused implementation (one kernel per
    parameter; the Trainer's default `adamw_torch_fused`) on CUDA, and on the CPU from torch 2.4, else torch's default
    one. The update is the same AdamW; fused is faster (7× on the optimizer step of a 3-layer MiniLM student, whose
    dense gradient of the word embeddings dominates it; 1.33× per training step:
    `benchmarks/profile_embedding_steps.py`).
    """
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    fused = device.type == "cuda" or (device.type == "cpu" and version >= FUSED_ADAMW_CPU_TORCH)
    if fused:
        return torch.optim.AdamW(parameters, lr=learning_rate, fused=True), "AdamW (fused)"
    return torch.optim.AdamW(parameters, lr=learning_rate), "AdamW (torch default implementation)"


def reload_check(path: str | os.PathLike, expected: torch.Tensor, texts: list[str]) -> dict[str, Any]:
    """Loads the student with plain sentence-transformers in a fresh process (hf_bort not imported) and compares."""
    from .recipe import run_in_fresh_process

    reloaded = run_in_fresh_process(
        RELOAD_SNIPPET, [str(Path(path).resolve()), json.dumps(texts)], f"Reloading {path} with SentenceTransformer"
    )
    difference = float((torch.tensor(reloaded["embeddings"]) - expected.float()).abs().max())
    return {
        "ok": difference < 1e-4,
        "loaded_encoder_class": reloaded["class"],
        "hf_bort_imported_in_reload_process": reloaded["hf_bort_imported"],
        "max_abs_embedding_difference": difference,
        "texts": len(texts),
    }


def save_head(folder: str | os.PathLike, head) -> None:
    """
    Writes `head`'s `Dense` stages into the sentence-transformers `folder` whose modules after the transformer are
    `head.stages` minus any projection [`SentenceEmbeddingHead.sliced`] added: such a projection becomes a new `Dense`
    module right after pooling (`modules.json` renumbered), every other `Dense` is saved over its folder.
    """
    from ..ose.embedding import PROJECTION_MARK

    folder = Path(folder)
    entries = json.loads((folder / "modules.json").read_text())
    transformer, rest = entries[0], list(entries[1:])
    if transformer["type"].rsplit(".", 1)[-1] != "Transformer":
        raise ValueError(f"{folder}/modules.json must list the Transformer first, got {transformer['type']}.")
    new_entries = [transformer]
    for stage in head.stages:
        if getattr(stage, PROJECTION_MARK, False):
            entry = {"path": f"{len(new_entries)}_Dense_hf_bort", "type": "sentence_transformers.models.Dense"}
        else:
            entry = rest.pop(0)
        if type(stage).__name__ == "Dense":
            (folder / entry["path"]).mkdir(parents=True, exist_ok=True)
            stage.save(str(folder / entry["path"]))
        new_entries.append(entry)
    if rest:
        raise ValueError(f"`head` has fewer stages than {folder}/modules.json lists modules.")
    for index, entry in enumerate(new_entries):
        entry["idx"], entry["name"] = index, str(index)
    (folder / "modules.json").write_text(json.dumps(new_entries, indent=2) + "\n")
