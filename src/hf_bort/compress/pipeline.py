"""
`compress`: one call from a source model, a labelled dataset and a budget to a validated, smaller, faster student.

Stages (each recorded in `OUTPUT/progress.json` when it finishes; a re-run skips finished stages and the search
resumes at the candidate it was in):

1. `data` — load and check the splits and the source before any training (columns, classes, labels vs the head,
   budget), carve a stratified dev split when there is none.
2. `source` — fine-tune a pretrained encoder (or take a fine-tuned classifier as it is): the teacher.
3. `search` — OSE with the task surrogate over the candidates within the budget; the lowest-error front point is
   chosen (`front.md`, `front.png`, `choice.json` in `OUTPUT/search/`).
4. `distill` — extraction of the chosen shape from the teacher, hidden-state distillation.
5. `task` — task distillation; the student is saved in `OUTPUT/student/` (weights, code, tokenizer).
6. `reload` — the student reloads with plain transformers in a fresh process, same logits.
7. `latency` — batch-1 latency of source and student, PyTorch and ONNX Runtime, measured in one run.
8. `test` — source and student on the test split: the only time it is read.
Then `compression_report.json` holds every setting, every number and the wall time of each stage, and
`OUTPUT/student/` becomes the folder to publish: its `README.md` model card (from the report), the report, the
front plot and the student's ONNX export beside the weights; with `push_to_hub` it is pushed in one commit.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .._lock import is_held
from .checks import budget_check, search_space, source_kind, source_tokenizer
from .config import CompressionConfig
from .data import TaskData, load_task_data
from .report import AGREEMENT_METRICS, CompressionResult, front_picks, publish, search_record, student_record
from .run import LOCK_NAME, REPORT_NAME, RUN_ENTRIES, STAGES, Run, output_folder

logger = logging.getLogger(__name__)

__all__ = [
    "AGREEMENT_METRICS",
    "LOCK_NAME",
    "REPORT_NAME",
    "RUN_ENTRIES",
    "STAGES",
    "CompressionResult",
    "compress",
    "is_held",
    "output_folder",
    "publish",
    "search_record",
    "source_tokenizer",
    "student_record",
]


def search_settings(config: CompressionConfig, out: Path, dev_rows: int) -> dict[str, Any]:
    """`OSESearch` keywords both compress paths share: budget, cost, intervals, batches, seed."""
    latency_budget = config.max_latency_ratio is not None or config.max_latency_ms is not None
    return dict(
        output_dir=out / "search",
        epsilon=config.epsilon,
        interval_size=config.search_interval,
        max_steps=config.search_max_steps,
        batch_size=config.search_batch_size,
        eval_batch_size=64,
        num_eval_batches=-(-min(config.search_eval_rows, dev_rows) // 64),
        max_train_batches=config.search_max_steps,
        learning_rate=config.search_learning_rate,
        seed=config.seed,
        cost="latency_ms" if latency_budget else "multiply_adds",
        sequence_length=config.cost_sequence_length,
        latency_engine=config.latency_engine,
        max_cost_ratio=config.max_latency_ratio if latency_budget else config.max_cost_ratio,
        max_multiply_adds_ratio=config.max_cost_ratio if latency_budget else None,
        max_latency_ms=config.max_latency_ms,
        layer_selection=config.layer_selection,
        show_progress=config.show_progress,
    )


def distil_settings(config: CompressionConfig, out: Path) -> dict[str, Any]:
    """`recipe.extract_and_distil` keywords both compress paths share (stage 4)."""
    return dict(
        seed=config.seed,
        layer_selection=config.layer_selection,
        distill_epochs=config.distill_epochs,
        distill_learning_rate=config.distill_learning_rate,
        batch_size=config.batch_size,
        work_dir=out / "tmp-trainer",
        show_progress=config.show_progress,
    )


def search_stage(run: Run, search, config: CompressionConfig, out: Path, picks: bool = False) -> None:
    """
    Stage 3 of both paths: the given `candidate`, or the search's lowest-error point within the budget; writes
    `search/front.md`, `front.png`, `choice.json` and records the stage. `picks` adds the front's picks at other
    multiply-add budgets.
    """
    from ..ose.space import Candidate

    if run.done("search"):
        return
    start = time.perf_counter()
    if config.candidate:
        candidate = Candidate.from_key(config.candidate)
        record = {"searched": False, "candidate": candidate.to_dict(), "why": "given by `candidate`"}
    else:
        result = search.run()
        chosen = result.choose()  # the search ran only over the candidates within the budget
        search_dir = out / "search"
        (search_dir / "front.md").write_text(result.to_markdown())
        plot = None
        try:
            plot = str(result.plot(search_dir / "front.png"))
        except ImportError:
            logger.warning("matplotlib is not installed: no front.png (pip install 'hf-bort[plots]').")
        record = search_record(search, result, chosen, plot)
        if picks:
            record["picks_within_ratio"] = front_picks(result)
        (search_dir / "choice.json").write_text(json.dumps(record, indent=1))
    run.finish("search", record, time.perf_counter() - start)


def compress(config: CompressionConfig) -> CompressionResult:
    """
    Compresses `config.model` for the labelled `config.dataset` within the budget: see the module docstring for the
    stages and [`CompressionConfig`] for every setting (`task="feature-extraction"`: the embedding-model path of
    `hf_bort.compress.embedding`, whose student is a sentence-transformers folder). Returns a
    [`CompressionResult`]; the student is in `OUTPUT/student/` and loads with
    `AutoModelForSequenceClassification.from_pretrained` (after `import hf_bort`, or with `trust_remote_code=True`,
    which runs the modeling code saved beside the weights).

    Example:

    ```python
    >>> from hf_bort import CompressionConfig, compress
    >>> result = compress(CompressionConfig(model="bert-dir", dataset="data/", max_cost_ratio=0.25,
    ...                                     output_dir="compressed"))  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    ```
    """
    if not isinstance(config, CompressionConfig):
        raise TypeError(f"`config` must be a CompressionConfig, got {type(config).__name__}.")
    if config.push_to_hub:  # token and Hub checked before any work
        from ..hub import check_push_ready

        check_push_ready(config.hub_model_id, field="hub_model_id")
    with output_folder(config):  # checked, then this run's alone until it returns
        if config.task == "feature-extraction":  # embedding models: hf_bort.compress.embedding
            from .embedding import compress_embeddings

            return compress_embeddings(config)
        return _compress_classifier(config)


def _compress_classifier(config: CompressionConfig) -> CompressionResult:
    """The `task="text-classification"` path of [`compress`], in its locked output folder."""
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification

    from ..models.bort.convert import convert_to_bort
    from ..models.bort.parameters import count_parameters
    from ..ose.costs import candidate_config, encoder_multiply_adds
    from ..ose.extract import save_extracted
    from ..ose.search import OSESearch
    from ..ose.space import Candidate
    from . import recipe

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    total_start = time.perf_counter()

    # ---------------------------------------------------------------------------------- 1. data and source checks
    source_config, is_classifier = source_kind(config.model)
    tokenizer = source_tokenizer(config.model)
    label2id = dict(source_config.label2id) if is_classifier else None
    data: TaskData = load_task_data(
        config, model_label2id=label2id, model_num_labels=source_config.num_labels if is_classifier else None
    )
    budget = budget_check(config, source_config)
    run = Run(config)
    out = run.dir
    stages = tqdm(total=len(STAGES), desc="compress", disable=not config.show_progress)
    fingerprint = data.fingerprint()
    run.check_data(fingerprint)
    run.finish(
        "data",
        {
            "fingerprint": fingerprint,
            "sizes": data.sizes(),
            "num_labels": data.num_labels,
            "label_names": data.label_names,
            "validation_carved": data.validation_carved,
            "notes": data.notes,
            "source_is_finetuned_classifier": is_classifier,
            **budget,
        },
        0.0,
    )
    stages.update(1)
    tokenised = {
        name: recipe.tokenise(split, tokenizer, config.max_length)
        for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test))
        if split is not None
    }

    # ------------------------------------------------------------------------------------------------ 2. source
    source_dir = out / "source-finetuned"
    stages.set_description("compress: source")
    if not run.done("source"):
        start = time.perf_counter()
        if is_classifier:
            teacher_model = AutoModelForSequenceClassification.from_pretrained(config.model).eval()
            record: dict[str, Any] = {"finetuned": False, "path": str(config.model)}
        else:
            id2label = dict(enumerate(data.label_names))
            teacher_model = AutoModelForSequenceClassification.from_pretrained(
                config.model,
                num_labels=data.num_labels,
                id2label=id2label,
                label2id={v: k for k, v in id2label.items()},
            )
            training = recipe.finetune(
                teacher_model,
                tokenised["train"],
                tokenizer,
                epochs=config.finetune_epochs,
                learning_rate=config.finetune_learning_rate,
                batch_size=config.batch_size,
                seed=config.seed,
                work_dir=out / "tmp-trainer",
                show_progress=config.show_progress,
            )
            teacher_model.save_pretrained(source_dir)
            tokenizer.save_pretrained(source_dir)
            record = {"finetuned": True, "path": str(source_dir), "training": training}
        record["dev"] = recipe.evaluate(teacher_model, tokenised["validation"], tokenizer)
        run.finish("source", record, time.perf_counter() - start)
    # this run's folder, however it is spelt now (the record holds the spelling of the call that fine-tuned)
    source_path = str(source_dir) if run.record("source")["finetuned"] else run.record("source")["path"]
    teacher_model = AutoModelForSequenceClassification.from_pretrained(source_path).eval()
    teacher = convert_to_bort(teacher_model).eval()  # same outputs, Bort parameter names
    stages.update(1)

    # ------------------------------------------------------------------------------------------------ 3. search
    search = OSESearch(
        teacher,
        search_space(config, teacher.config),
        tokenizer=tokenizer,
        task_dataset=data.train,
        eval_dataset=data.validation.select(range(min(config.search_eval_rows, len(data.validation)))),
        objective="task",
        temperature=config.temperature,
        alpha_ce=config.alpha_ce,
        alpha_kd=config.alpha_kd,
        max_length=config.max_length,
        **search_settings(config, out, len(data.validation)),
    )
    stages.set_description("compress: search")
    search_stage(run, search, config, out, picks=True)
    candidate = Candidate.from_dict(run.record("search")["candidate"])
    stages.update(1)

    # ------------------------------------------------------------------------- 4. extraction + hidden distillation
    distilled_dir = out / "student-distilled"
    stages.set_description("compress: distill")
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
        save_extracted(student, distilled_dir, tokenizer, card=False)  # intermediate: no card
        run.finish("distill", record, time.perf_counter() - start)
    stages.update(1)

    # ---------------------------------------------------------------------------------------- 5. task distillation
    student_dir = out / "student"
    stages.set_description("compress: task")
    if not run.done("task"):
        start = time.perf_counter()
        student = AutoModelForSequenceClassification.from_pretrained(distilled_dir)
        training = recipe.finetune(
            student,
            tokenised["train"],
            tokenizer,
            epochs=config.task_epochs,
            learning_rate=config.task_learning_rate,
            batch_size=config.batch_size,
            seed=config.seed,
            work_dir=out / "tmp-trainer",
            show_progress=config.show_progress,
            teacher=teacher,
            alpha_ce=config.alpha_ce,
            alpha_kd=config.alpha_kd,
            temperature=config.temperature,
        )
        save_extracted(student, student_dir, tokenizer, card=False)  # its card is written from the report
        record = {"training": training, "dev": recipe.evaluate(student, tokenised["validation"], tokenizer)}
        run.finish("task", record, time.perf_counter() - start)
    student = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    shutil.rmtree(out / "tmp-trainer", ignore_errors=True)
    stages.update(1)

    # ------------------------------------------------------------------------------------------------ 6. reload
    stages.set_description("compress: reload")
    if not run.done("reload"):
        start = time.perf_counter()
        if config.reload_check:
            texts = list(data.validation["text"])[:16]
            record = recipe.reload_check(student_dir, student, tokenizer, texts, config.max_length)
            if not record["ok"]:
                raise RuntimeError(f"The saved student does not reload with the same logits: {record}")
        else:
            record = {"skipped": "reload_check=False"}
        run.finish("reload", record, time.perf_counter() - start)
    stages.update(1)

    # ----------------------------------------------------------------------------------------------- 7. latency
    stages.set_description("compress: latency")
    if not run.done("latency"):
        start = time.perf_counter()
        record = recipe.measure_latency(
            {"source": teacher_model, "student": student},
            tokenizer,
            sequence_length=config.max_length,
            batch_size=1,
            runs=config.latency_runs,
            onnx_dir=out / "onnx" if config.measure_onnx else None,
            seed=config.seed,
        )
        run.finish("latency", record, time.perf_counter() - start)
    stages.update(1)

    # ------------------------------------------------------------------------------- 8. test, read once at the end
    stages.set_description("compress: test")
    if not run.done("test"):
        start = time.perf_counter()
        if config.evaluate_test and "test" in tokenised:
            record = {
                "source": recipe.evaluate(teacher_model, tokenised["test"], tokenizer),
                "student": recipe.evaluate(student, tokenised["test"], tokenizer),
            }
        else:
            record = {"skipped": "no test split" if "test" not in tokenised else "evaluate_test=False"}
        run.finish("test", record, time.perf_counter() - start)
    stages.update(1)
    stages.close()

    # ------------------------------------------------------------------------------------------------- report
    source_bort_config = teacher.config
    student_config = candidate_config(candidate, source_bort_config)
    source_macs = encoder_multiply_adds(source_bort_config, config.cost_sequence_length)
    student_macs = encoder_multiply_adds(student.config, config.cost_sequence_length)
    records = run.progress["stages"]
    test = records["test"]
    report = {
        "settings": config.to_dict(),
        "data": records["data"],
        "source": {
            "path": source_path,
            "model_type": source_config.model_type,
            "finetuned_here": records["source"]["finetuned"],
            "training": records["source"].get("training"),
            "parameters": count_parameters(source_bort_config, task="text-classification").total,
            "encoder_multiply_adds": source_macs,
            "dev": records["source"]["dev"],
            "test": test.get("source"),
        },
        "search": records["search"],
        "student": {
            **student_record(
                config,
                records,
                student_dir,
                candidate,
                student.config,
                parameters=count_parameters(student_config, task="text-classification").total,
                multiply_adds=student_macs,
                source_multiply_adds=source_macs,
            ),
            "task_distillation": records["task"]["training"],
            "dev": records["task"]["dev"],
            "test": test.get("student"),
        },
        "reload": records["reload"],
        "latency": records["latency"],
        "test_split_read": "once, after every choice was made" if "skipped" not in test else test["skipped"],
        "wall_s": {**run.progress["wall_s"], "this_call_s": time.perf_counter() - total_start},
        "machine": recipe.machine_info(),
    }
    publish(config, out, report)
    return CompressionResult(report=report, output_dir=out)
