"""
The training and checking steps of `compress` for embedding models (`CompressionConfig(task="feature-extraction")`,
driven by [`~hf_bort.compress.tasks.embedding.EmbeddingTask`]), each usable alone: [`encode`] sentence embeddings
through a sentence-transformers head, [`distil_embeddings`] (loss 1 − cos to the teacher's embeddings),
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
    show_progress: bool = True,
) -> dict[str, Any]:
    """
    Trains `encoder` (and `head`'s trainable parameters) so that `head(encoder(text))` matches `teacher_embeddings`
    (one row per text) with the cosine distance 1 − cos: AdamW, linear decay to 0, no warm-up, shuffled batches
    (seeded), dropout as configured. Runs on [`hf_bort._device.compute_device`] (encoder and head are moved there).
    """
    from tqdm.auto import tqdm

    from ..ose.embedding import embedding_loss

    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(texts) // batch_size)
    total = max(1, round(epochs * steps_per_epoch))
    device = _device.compute_device()
    encoder, head = _device.to_device(encoder, device), _device.to_device(head, device)
    parameters = [p for module in (encoder, head) for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    encoder.train()
    losses, step, start = [], 0, time.perf_counter()
    progress = tqdm(total=total, desc="embedding distillation", disable=not show_progress)
    while step < total:
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
            loss = embedding_loss(embeddings, _device.to_device(teacher_embeddings[rows], device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            progress.update(1)
    progress.close()
    encoder.eval()
    return {
        "steps": step,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "loss": "1 - cos(student, teacher) of the sentence embeddings",
        "train_loss": sum(losses) / max(1, len(losses)),
        "train_loss_last_50": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "wall_s": time.perf_counter() - start,
    }


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
