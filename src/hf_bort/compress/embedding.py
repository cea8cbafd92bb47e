"""
`compress` for embedding models (`CompressionConfig(task="feature-extraction")`): a sentence-transformers source
folder, texts without labels and a budget in; a smaller sentence-transformers folder out, with its agreement to the
teacher's embeddings on held-out texts.

Stages (recorded in `OUTPUT/progress.json` like the classification pipeline's, so a re-run resumes):

1. `data` — the text splits (a dev split carved from train when missing) and the source checks, before any training.
2. `source` — the teacher: the source `SentenceTransformer`, its encoder as Bort and its modules after the encoder
   (pooling, `Dense`, `Normalize`) as a frozen [`SentenceEmbeddingHead`]; checked to reproduce
   `SentenceTransformer.encode` within 1e-5.
3. `search` — OSE with the `"embedding"` objective: each candidate is trained for bounded steps on the cosine
   distance of its sentence embeddings to the teacher's; ê is that distance on dev texts.
4. `distill` — extraction of the chosen shape, hidden-state distillation; saved as a sentence-transformers folder
   (pooling width and `Dense` follow the kept dims).
5. `task` — embedding distillation: the student's encoder is trained so that its sentence embeddings (through the
   frozen head) match the teacher's, loss 1 − cos; the student is saved in `OUTPUT/student/`.
6. `reload` — `SentenceTransformer(OUTPUT/student, trust_remote_code=True)` in a fresh process without hf_bort gives
   the same embeddings.
7. `latency` — batch-1 latency of the source and the student encoders, PyTorch and ONNX Runtime.
8. `test` — agreement on the test texts: mean cosine, nearest-neighbour agreement, Spearman of the pairwise
   similarities (read once, at the end).

Then, as in the classification path (`hf_bort.compress.pipeline.publish`), `compression_report.json` is saved and
`OUTPUT/student/` becomes the folder to publish: its `README.md` model card (library `sentence-transformers`, the
agreement metrics in its `model-index`), the report, the front plot and the ONNX export; with `push_to_hub` it is
pushed in one commit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .config import CompressionConfig

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
    """Sentence embeddings of `texts`: `encoder`'s last hidden state through `head` (batched, no gradients)."""
    encoder.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = encoder(**inputs).last_hidden_state
        out.append(head(hidden, inputs["attention_mask"]))
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
    (seeded), dropout as configured.
    """
    from tqdm.auto import tqdm

    from ..ose.embedding import embedding_loss

    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(texts) // batch_size)
    total = max(1, round(epochs * steps_per_epoch))
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
            embeddings = head(encoder(**inputs).last_hidden_state, inputs["attention_mask"])
            loss = embedding_loss(embeddings, teacher_embeddings[rows])
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


def compress_embeddings(config: CompressionConfig):
    """
    The `task="feature-extraction"` path of [`compress`]: see the module docstring. Returns a
    [`CompressionResult`] whose `student_path` is a sentence-transformers folder.
    """
    from tqdm.auto import tqdm
    from transformers import AutoModel

    from ..models.bort.parameters import count_parameters
    from ..models.sentence_transformers_folder import transformer_source
    from ..ose.costs import encoder_multiply_adds
    from ..ose.embedding import SentenceEmbeddingHead, embedding_agreement, load_sentence_transformer
    from ..ose.extract import load_source_as_bort, save_extracted
    from ..ose.search import OSESearch
    from ..ose.space import Candidate
    from . import recipe
    from .data import load_text_data
    from .pipeline import (
        STAGES,
        CompressionResult,
        _budget_check,
        _Run,
        _space,
        distil_settings,
        publish,
        search_settings,
        search_stage,
        student_record,
    )

    if config.task != "feature-extraction":
        raise ValueError(f"compress_embeddings needs task='feature-extraction', got {config.task!r}.")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    total_start = time.perf_counter()

    # -------------------------------------------------------------------------------- 1. data and source checks
    from .pipeline import _source_kind, source_tokenizer

    source_config, _ = _source_kind(config.model)
    encoder_path = transformer_source(config.model)
    tokenizer = source_tokenizer(encoder_path)
    teacher_st = load_sentence_transformer(config.model)  # refuses a folder without modules.json, before training
    data = load_text_data(config)
    budget = _budget_check(config, source_config)
    run = _Run(config)
    out = run.dir
    stages = tqdm(total=len(STAGES), desc="compress", disable=not config.show_progress)
    fingerprint = data.fingerprint()
    run.check_data(fingerprint)
    run.finish(
        "data",
        {
            "fingerprint": fingerprint,
            "sizes": data.sizes(),
            "validation_carved": data.validation_carved,
            "examples": list(data.validation["text"][:3]),  # the card's widget (issue 22)
            "notes": data.notes,
            "task": config.task,
            **budget,
        },
        0.0,
    )
    stages.update(1)
    max_length = min(config.max_length, teacher_st.max_seq_length or config.max_length)
    train_texts, dev_texts = list(data.train["text"]), list(data.validation["text"])

    # ----------------------------------------------------------------------------------------- 2. source / head
    stages.set_description("compress: source")
    teacher = load_source_as_bort(config.model).eval()
    head = SentenceEmbeddingHead.from_model(teacher_st)
    if not run.done("source"):
        start = time.perf_counter()
        sample = dev_texts[:16]
        reference = teacher_st.encode(sample, convert_to_tensor=True, batch_size=16)
        # the reference is encode()'s own max_seq_length; compare at that length
        mine = encode(teacher, head, tokenizer, sample, teacher_st.max_seq_length or max_length)
        difference = float((mine - reference).abs().max())
        if difference > 1e-5:
            raise RuntimeError(
                f"The Bort teacher with the source's pooling head differs from SentenceTransformer.encode by "
                f"{difference:.3g}: the embedding pipeline is not reproduced."
            )
        record = {
            "path": str(config.model),
            "modules": [type(m).__name__ for m in teacher_st.children()],
            "embedding_dimension": int(reference.shape[-1]),
            "head_check_max_abs_difference": difference,
        }
        run.finish("source", record, time.perf_counter() - start)
    stages.update(1)
    dev_teacher = encode(teacher, head, tokenizer, dev_texts, max_length)

    # ------------------------------------------------------------------------------------------------ 3. search
    n_eval = min(config.search_eval_rows, len(dev_texts))
    search = OSESearch(
        teacher,
        _space(config, teacher.config),
        tokenizer=tokenizer,
        text_dataset=data.train,
        eval_dataset=data.validation.select(range(n_eval)),
        objective="embedding",
        embedding_head=head,
        max_length=max_length,
        **search_settings(config, out, len(dev_texts)),
    )
    stages.set_description("compress: search")
    search_stage(run, search, config, out)
    candidate = Candidate.from_dict(run.record("search")["candidate"])
    stages.update(1)

    # --------------------------------------------------------------------- 4. extraction + hidden distillation
    distilled_dir = out / "student-distilled"
    stages.set_description("compress: distill")
    tokenised = {
        name: recipe.tokenise(split, tokenizer, max_length, keep_labels=False)
        for name, split in (("train", data.train), ("validation", data.validation))
    }
    if not run.done("distill"):
        start = time.perf_counter()
        student, record = recipe.extract_and_distil(
            teacher,
            candidate,
            tokenised["train"],
            tokenised["validation"],
            tokenizer,
            **distil_settings(config, out),
        )
        if distilled_dir.exists():
            shutil.rmtree(distilled_dir)
        save_extracted(student, distilled_dir, tokenizer, source=config.model, card=False)  # intermediate: no card
        student_head = head.sliced(student.ose_plan.dims, teacher.config.hidden_size)
        save_head(distilled_dir, student_head)  # adds the projection back to the teacher's width when needed
        record["head"] = [type(stage).__name__ for stage in student_head.stages]
        run.finish("distill", record, time.perf_counter() - start)
    stages.update(1)

    # -------------------------------------------------------------------------------- 5. embedding distillation
    student_dir = out / "student"
    stages.set_description("compress: embeddings")
    if not run.done("task"):
        start = time.perf_counter()
        student_st = load_sentence_transformer(distilled_dir)
        student_head = SentenceEmbeddingHead.from_model(student_st)
        for stage in student_head.stages:  # the (sliced or added) Dense layers train with the encoder
            if type(stage).__name__ == "Dense":
                stage.requires_grad_(True)
        encoder = student_st[0].auto_model
        teacher_train = encode(teacher, head, tokenizer, train_texts, max_length)
        before = embedding_agreement(encode(encoder, student_head, tokenizer, dev_texts, max_length), dev_teacher)
        training = distil_embeddings(
            encoder,
            student_head,
            teacher_train,
            train_texts,
            tokenizer,
            epochs=config.task_epochs,
            learning_rate=config.task_learning_rate,
            batch_size=config.batch_size,
            max_length=max_length,
            seed=config.seed,
            show_progress=config.show_progress,
        )
        if student_dir.exists():
            shutil.rmtree(student_dir)
        shutil.copytree(distilled_dir, student_dir)
        encoder.save_pretrained(transformer_source(student_dir))
        save_head(student_dir, student_head)
        after = embedding_agreement(encode(encoder, student_head, tokenizer, dev_texts, max_length), dev_teacher)
        run.finish("task", {"training": training, "dev_before": before, "dev": after}, time.perf_counter() - start)
    shutil.rmtree(out / "tmp-trainer", ignore_errors=True)
    student_st = load_sentence_transformer(student_dir)
    encoder, student_head = student_st[0].auto_model.eval(), SentenceEmbeddingHead.from_model(student_st)
    stages.update(1)

    # ------------------------------------------------------------------------------------------------ 6. reload
    stages.set_description("compress: reload")
    if not run.done("reload"):
        start = time.perf_counter()
        if config.reload_check:
            texts = dev_texts[:16]
            expected = student_st.encode(texts, convert_to_tensor=True)
            record = reload_check(student_dir, expected, texts)
            if not record["ok"]:
                raise RuntimeError(f"The saved student does not reload with the same embeddings: {record}")
        else:
            record = {"skipped": "reload_check=False"}
        run.finish("reload", record, time.perf_counter() - start)
    stages.update(1)

    # ----------------------------------------------------------------------------------------------- 7. latency
    stages.set_description("compress: latency")
    source_encoder = AutoModel.from_pretrained(encoder_path).eval()
    if not run.done("latency"):
        start = time.perf_counter()
        record = recipe.measure_latency(
            {"source": source_encoder, "student": encoder},
            tokenizer,
            sequence_length=config.max_length,
            batch_size=1,
            runs=config.latency_runs,
            onnx_dir=out / "onnx" if config.measure_onnx else None,
            seed=config.seed,
            task="feature-extraction",
        )
        run.finish("latency", record, time.perf_counter() - start)
    stages.update(1)

    # ---------------------------------------------------------------------------- 8. test, read once at the end
    stages.set_description("compress: test")
    if not run.done("test"):
        start = time.perf_counter()
        if config.evaluate_test and data.test is not None:
            test_texts = list(data.test["text"])
            record = {
                "student": embedding_agreement(
                    encode(encoder, student_head, tokenizer, test_texts, max_length),
                    encode(teacher, head, tokenizer, test_texts, max_length),
                )
            }
        else:
            record = {"skipped": "no test split" if data.test is None else "evaluate_test=False"}
        run.finish("test", record, time.perf_counter() - start)
    stages.update(1)
    stages.close()

    # ------------------------------------------------------------------------------------------------- report
    records = run.progress["stages"]
    source_macs = encoder_multiply_adds(teacher.config, config.cost_sequence_length)
    student_macs = encoder_multiply_adds(encoder.config, config.cost_sequence_length)
    test = records["test"]
    report = {
        "settings": config.to_dict(),
        "task": config.task,
        "data": records["data"],
        "source": {
            "path": str(config.model),
            "model_type": source_config.model_type,
            **records["source"],
            "parameters": count_parameters(teacher.config, task="feature-extraction").total,
            "encoder_multiply_adds": source_macs,
        },
        "search": records["search"],
        "student": {
            **student_record(
                config,
                records,
                student_dir,
                candidate,
                encoder.config,
                parameters=count_parameters(encoder.config, task="feature-extraction").total,
                multiply_adds=student_macs,
                source_multiply_adds=source_macs,
            ),
            "embedding_distillation": records["task"]["training"],
            "dev_before_embedding_distillation": records["task"]["dev_before"],
            "dev": records["task"]["dev"],
            "test": test.get("student"),
        },
        "reload": records["reload"],
        "latency": records["latency"],
        "test_split_read": "once, after every choice was made" if "skipped" not in test else test["skipped"],
        "wall_s": {**run.progress["wall_s"], "this_call_s": time.perf_counter() - total_start},
        "machine": recipe.machine_info(),
    }
    publish(config, out, report)  # the card, report, plot and ONNX in OUTPUT/student; the push when asked
    return CompressionResult(report=report, output_dir=out)
