"""
Card data of a `compress` run, from its `compression_report.json` (see `hf_bort.compress.pipeline`): a text
classifier, or with `task="feature-extraction"` a sentence-transformers embedding student (agreement with the
teacher's embeddings instead of accuracy; `hf_bort.compress.embedding`). Both share this builder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .builders import (
    AGREEMENT_TYPES,
    METRIC_TYPES,
    ONNX_SUBFOLDER,
    _cell,
    _int,
    _num,
    _pct,
    _rows,
    _shape_rows,
    _source_family,
    write_card,
)
from .data import BortCardData, EvalRecord, display_name, escape_markdown, hub_id


def _dataset(settings: dict[str, Any]) -> tuple[list[str], str]:
    if settings.get("dataset_name"):  # named by the user: shown as given, not claimed as a Hub dataset
        return [], str(settings["dataset_name"])
    dataset = str(settings.get("dataset") or "")
    if not dataset or dataset.startswith("<"):
        return [], "an in-memory dataset"
    if os.path.exists(dataset):
        return [], Path(dataset.rstrip("/")).name
    return ([dataset] if hub_id(dataset) or "/" not in dataset else []), dataset


EMBEDDING_TASK = "feature-extraction"


def _agreement(value: Any) -> str | None:
    return None if value is None else f"{value:.4f}"


def _kept(training: dict[str, Any]) -> str:
    """ ", evaluated on dev every epoch, epoch 6 kept (best dev macro_f1; stopped early)" when the run kept one."""
    if training.get("best_epoch") is None:
        return ""
    stopped = "; stopped early" if training.get("stopped_early") else ""
    return (
        f", evaluated on dev every epoch, epoch {training['best_epoch']:g} kept (best dev "
        f"{training.get('best_checkpoint_metric')}{stopped})"
    )


def _augmentation(record: dict[str, Any]) -> str | None:
    """The augmentation round in one sentence: its cost, the dev gate's numbers and which student was kept."""
    if "decision" not in record:
        return None
    text = f"Augmentation round: {record.get('teacher_calls', 0)} teacher calls, {record.get('rows_added', 0)} rows"
    if "threshold" not in record:
        return f"{text}; {record.get('why')}."
    before, after, metric = record["dev_before"], record["dev_after"], record["metric"]
    kept = "kept" if record["decision"] == "kept" else "rejected: the task-distilled student was kept"
    return (
        f"{text}, then {(record.get('training') or {}).get('epochs')} epoch(s) of task distillation; dev {metric} "
        f"{_num(before.get(metric))} → {_num(after.get(metric))} against the gate {_num(record['threshold'])} "
        f"(the task student's + one standard error, {_num(record['standard_error'])}): {kept}"
        + (" (augment='always')" if record.get("mode") == "always" and not record.get("passes_gate") else "")
        + "."
    )


def compressed_card(report: dict[str, Any], model_name: str = "model") -> BortCardData:
    """
    Card data of a `compress` run from its `compression_report.json` (see `hf_bort.compress.pipeline`). A report
    with `task="feature-extraction"` gives an embedding student's card: agreement metrics (mean cosine,
    nearest-neighbour agreement, Spearman of pairwise similarities) in the results and the `model-index`.
    """
    embedding = report.get("task") == EMBEDDING_TASK
    settings = report.get("settings", {})
    source, student, search = report.get("source", {}), report.get("student", {}), report.get("search", {})
    data, latency, machine = report.get("data", {}), report.get("latency") or {}, report.get("machine") or {}
    datasets, dataset_name = _dataset(settings)
    source_name = settings.get("model")
    ratio = student.get("multiply_adds_ratio")
    length = student.get("multiply_adds_sequence_length") or settings.get("cost_sequence_length")
    budget = []
    if settings.get("max_cost_ratio") is not None:
        budget.append(f"≤ {settings['max_cost_ratio']:g} × the source's encoder multiply-adds")
    if settings.get("max_latency_ratio") is not None:
        budget.append(f"≤ {settings['max_latency_ratio']:g} × the source's {settings.get('latency_engine')} latency")
    if settings.get("max_latency_ms") is not None:
        budget.append(f"≤ {settings['max_latency_ms']:g} ms ({settings.get('latency_engine')})")
    labels = data.get("label_names")
    # User strings as the body shows them (escaped); the raw ones go to the YAML metadata only.
    source_shown = escape_markdown(display(source_name), code=True)
    data_shown = escape_markdown(dataset_name)
    if embedding:
        summary = (
            f"A {student.get('shape', '')} Bort sentence-embedding student of {source_shown} (a "
            f"sentence-transformers model), distilled on the teacher's sentence embeddings of {data_shown} texts "
            "by `hf_bort.compress`"
        )
    else:
        kind = "text-pair classification (a cross-encoder)" if data.get("text_pair_column") else "text classification"
        summary = (
            f"A {student.get('shape', '')} Bort student of {source_shown} for {kind} on "
            f"{data_shown}{' (' + ', '.join(map(escape_markdown, labels)) + ')' if labels else ''}, made by "
            "`hf_bort.compress`"
        )
    if ratio is not None:
        summary += f": {100 * ratio:.1f} % of the source's encoder multiply-adds (at {length} tokens)"
    if student.get("parameters") and source.get("parameters"):
        summary += f", {student['parameters']:,} parameters vs {source['parameters']:,}"
    trained_on = "the teacher's sentence embeddings" if embedding else "the task"
    summary += (
        ". The student's shape was chosen by the OSE search within the budget, its weights extracted from the "
        f"{'source' if embedding else 'fine-tuned source'}, then distilled on hidden states and on {trained_on}."
        if search.get("searched")
        else f". The shape was given ({search.get('why', 'no search')}); weights extracted and distilled."
    )
    full_steps = (
        math.ceil(settings["search_base_steps"] / settings["epsilon"])
        if settings.get("search_base_steps") and settings.get("epsilon")
        else None
    )
    steps = search.get("training_steps") or {}
    sizes = data.get("sizes") or {}
    rows = [
        ("Source", source_shown if source_name else None),
        ("Data", data_shown),
        (
            "Inputs",
            f"text pairs (columns {escape_markdown(settings.get('text_column'), code=True)}, "
            f"{escape_markdown(data['text_pair_column'], code=True)}), tokenised as (text, text_pair)"
            if data.get("text_pair_column")
            else None,
        ),
        (
            "Rows (train / dev / test)",
            " / ".join(f"{sizes[k]:,}" for k in ("train", "validation", "test") if k in sizes),
        ),
        ("Budget", "; ".join(budget) or None),
        ("Candidates in the search space", data.get("candidates_in_space")),
        ("Candidates searched", search.get("candidates_searched")),
        ("Search objective (ê)", search.get("objective")),
        (
            "ε / first interval / full budget",
            f"{settings.get('epsilon')} / {settings.get('search_interval')} / {full_steps} steps"
            if full_steps
            else None,
        ),
        ("Rungs (steps)", ", ".join(map(str, search["rungs"])) if search.get("rungs") else None),
        (
            "Survivors per rung",
            ", ".join(map(str, search["survivors_per_rung"])) if search.get("survivors_per_rung") else None,
        ),
        (
            "Search training steps (exhaustive equivalent)",
            f"{steps['search_total']:,} ({steps['exhaustive_equivalent']:,})" if "search_total" in steps else None,
        ),
        ("Embedding dimension", source.get("embedding_dimension") if embedding else None),
        (
            "Source modules",
            " → ".join(map(escape_markdown, source["modules"])) if embedding and source.get("modules") else None,
        ),
        ("Layer selection", settings.get("layer_selection")),
        ("Max tokens per text", settings.get("max_length")),
        ("Seed", settings.get("seed")),
    ]
    config = student.get("config") or {}
    extraction = student.get("extraction") or {}
    front_rows = []
    front_key, front_label, front_show = (
        ("dev_mean_cosine", "Dev mean cosine (search)", _agreement)
        if embedding
        else ("dev_accuracy", "Dev accuracy (search)", _pct)
    )
    if search.get("front"):
        has_latency = any(row.get("latency_ms") is not None for row in search["front"])
        header = [
            "Candidate",
            "Encoder parameters",
            "Multiply-adds × source",
            *(["Latency ms"] if has_latency else []),
            "ê",
            front_label,
        ]
        front_rows.append(header)
        for row in search["front"]:
            key = row["candidate"]
            chosen = key.startswith(student.get("shape", "\0")) or key == student.get("shape")
            front_rows.append(
                [
                    f"**{key}** (chosen)" if chosen else key,
                    _cell(_int(row.get("params"))),
                    _num(row.get("multiply_adds_ratio"), 3),
                    *([_num(row.get("latency_ms"), 3)] if has_latency else []),
                    _num(row.get("error"), 4),
                    _cell(front_show(row.get(front_key))),
                ]
            )
    recipe = []
    training = source.get("training")
    if embedding and source:
        recipe.append(
            "Teacher: the source SentenceTransformer as it is; its encoder converted to Bort and its modules after "
            f"the encoder ({', '.join(map(escape_markdown, source.get('modules', [])[1:])) or 'pooling'}) used as a "
            "frozen head "
            "(checked to reproduce `SentenceTransformer.encode` within "
            f"{_num(source.get('head_check_max_abs_difference'), 3)})."
        )
    elif source.get("finetuned_here") and training:
        recipe.append(
            f"Source fine-tuned on the train split: {training.get('epochs')} epochs, "
            f"lr {training.get('learning_rate')}, batch {training.get('batch_size')}, "
            f"{training.get('steps')} steps ({training.get('loss')}){_kept(training)}."
        )
    elif source:
        recipe.append("Source: a fine-tuned classifier, used as the teacher as it is.")
    search_training = (
        "on the cosine distance of its sentence embeddings to the teacher's" if embedding else "with task distillation"
    )
    if search.get("searched"):
        recipe.append(
            f"OSE search: each candidate extracted from the teacher and trained {search_training} "
            f"(lr {settings.get('search_learning_rate')}, batch {settings.get('search_batch_size')}) in successive "
            f"intervals; ê = {search.get('objective')} on {settings.get('search_eval_rows')} dev rows; the "
            "lowest-ê front point within the budget is chosen."
        )
    distillation = extraction.get("distillation") or {}
    if extraction:
        text = (
            f"Extraction of {student.get('shape')} (importance from {extraction.get('calibration_texts')} "
            "calibration texts)"
        )
        if distillation:
            text += (
                f", then hidden-state distillation: {distillation.get('epochs')} epochs, lr "
                f"{distillation.get('learning_rate')}, batch {distillation.get('batch_size')}, "
                f"{distillation.get('steps')} steps; held-out loss {_num(distillation.get('heldout_loss_before'))} → "
                f"{_num(distillation.get('heldout_loss_after'))}"
            )
        recipe.append(text + ".")
    task = student.get("embedding_distillation" if embedding else "task_distillation") or {}
    if task:
        text = (
            f"{'Embedding' if embedding else 'Task'} distillation: {task.get('loss')}, {task.get('epochs')} epochs, "
            f"lr {task.get('learning_rate')}, batch {task.get('batch_size')}, {task.get('steps')} steps{_kept(task)}"
        )
        before, after = student.get("dev_before_embedding_distillation") or {}, student.get("dev") or {}
        if embedding and before.get("mean_cosine") is not None and after.get("mean_cosine") is not None:
            text += f"; dev mean cosine {_agreement(before['mean_cosine'])} → {_agreement(after['mean_cosine'])}"
        recipe.append(text + ".")
    augmentation = _augmentation(report.get("augment") or {})
    if augmentation:
        recipe.append(augmentation)
    qat = student.get("quantization_aware_training") or {}
    if qat:
        before, after = qat.get("dev_simulated_int8_before") or {}, qat.get("dev_simulated_int8") or {}
        kept = (
            "the best check kept"
            if qat.get("kept") == "qat"
            else "no check beat the task-distilled weights, which were kept"
        )
        own = qat.get("target") == "self"
        how = "distillation towards the student's own fp32 logits" if own else "the same distillation"
        agreement = (
            f", simulated-int8 dev agreement with fp32 {_pct(before.get('int8_fp32_agreement'))} → "
            f"{_pct(after.get('int8_fp32_agreement'))}"
            if before.get("int8_fp32_agreement") is not None
            else ""
        )
        recipe.append(
            f"Quantization-aware training for ONNX Runtime's full dynamic int8: {how} with int8 "
            "weights (symmetric, per output channel) and int8 inputs (one scale per tensor, as at run time) "
            f"simulated on every linear layer, lr {qat.get('learning_rate')}, {qat.get('steps')} steps; "
            f"simulated-int8 dev accuracy {_pct(before.get('accuracy'))} → {_pct(after.get('accuracy'))}"
            f"{agreement} ({kept}). "
            "The weights are plain fp32: quantize them with `hf-bort export --int8 dynamic-int8`."
        )
    results = [["", f"source ({source_shown})", "this model"]]
    eval_results = []
    metric_types, show = (AGREEMENT_TYPES, _agreement) if embedding else (METRIC_TYPES, _pct)
    for split, split_name in (("dev", "validation"), ("test", "test")):
        for key, (metric, label) in metric_types.items():
            a = None if embedding else (source.get(split) or {}).get(key)  # the teacher is the reference
            b = (student.get(split) or {}).get(key)
            if a is None and b is None:
                continue
            rows_read = (student.get(split) or {}).get("texts" if embedding else "rows")
            unit = "texts" if embedding else "rows"
            results.append(
                [
                    f"{split} {label}" + (f" ({rows_read:,} {unit})" if rows_read else ""),
                    "reference" if embedding else _cell(show(a)),
                    _cell(show(b)),
                ]
            )
            if b is not None:
                eval_results.append(
                    EvalRecord(
                        metric,
                        split_name,
                        float(b),
                        dataset=datasets[0] if datasets else "custom",
                        dataset_name=dataset_name,
                        task="sentence-similarity" if embedding else "text-classification",
                        name=f"{split} {label}",
                    )
                )
    if source.get("parameters") or student.get("parameters"):
        results.append(["parameters", _cell(_int(source.get("parameters"))), _cell(_int(student.get("parameters")))])
    if source.get("encoder_multiply_adds"):
        results.append(
            [
                f"encoder multiply-adds ({length} tokens)",
                _int(source["encoder_multiply_adds"]),
                f"{_int(student.get('encoder_multiply_adds'))}" + (f" (× {ratio:.3f})" if ratio is not None else ""),
            ]
        )
    engines = (("pytorch", "PyTorch"), ("onnxruntime_fp32", "ONNX Runtime fp32"))
    for engine, label in engines:
        cell = latency.get(engine)
        if not cell:
            continue
        src, stu = cell.get("source", {}), cell.get("student", {})
        results.append(
            [
                f"latency p50, {label}",
                f"{src['p50_ms']:.2f} ms" if "p50_ms" in src else "–",
                (f"{stu['p50_ms']:.2f} ms" if "p50_ms" in stu else "–")
                + (f" (× {stu['ratio_to_source']:.2f})" if "ratio_to_source" in stu else ""),
            ]
        )
    speed = report.get("speed") or {}
    for engine, label in engines:  # measured beside analytic: the student may be overhead-bound
        cell = speed.get(engine)
        if cell:
            results.append(
                [
                    f"speed-up over the source, {label}",
                    "1×",
                    f"{cell['measured_speedup']:.2f}× measured vs {speed['analytic_speedup']:.2f}× from multiply-adds "
                    f"at {speed['sequence_length']} tokens ({100 * cell['fraction_of_analytic']:.0f} %)",
                ]
            )
    note = []
    if latency:
        cpu = machine.get("cpu")
        note.append(
            f"Latency: p50 of {(latency.get('pytorch') or {}).get('student', {}).get('runs', '')} batch-"
            f"{latency.get('batch_size')} forward passes at {latency.get('sequence_length')} tokens, "
            f"{latency.get('threads')} thread(s), source and student timed in the same run"
            + (f" on {cpu}" if cpu else "")
            + (f" ({machine['cpu_count']} cores)" if machine.get("cpu_count") else "")
            + (f", torch {machine['torch']}, transformers {machine['transformers']}" if machine.get("torch") else "")
            + "."
        )
    if report.get("test_split_read"):
        note.append(f"Test split read {report['test_split_read']}.")
    reload = report.get("reload") or {}
    if reload.get("ok") and embedding:
        note.append(
            "Reload check: plain sentence-transformers (`trust_remote_code=True`, hf_bort not imported) gives the "
            f"same embeddings (max difference {reload.get('max_abs_embedding_difference')})."
        )
    elif reload.get("ok"):
        note.append(
            "Reload check: plain transformers (`trust_remote_code=True`, hf_bort not imported) gives the same logits "
            f"(max difference {reload.get('max_abs_logit_difference')})."
        )
    limitations = [
        f"Distilled to agree with its teacher on {data_shown} texts; agreement on other text domains was not measured."
        if embedding
        else f"Distilled for one task ({data_shown}); not a general-purpose encoder.",
    ]
    if latency:
        limitations.append(
            "Latency was measured on one CPU; other CPUs, thread counts and sequence lengths give other ratios."
        )
    tested = (student.get("test") or {}).get("texts" if embedding else "rows")
    if tested:
        limitations.insert(0, f"Evaluated on {tested:,} test {'texts' if embedding else 'rows'} of {data_shown} only.")
    return BortCardData(
        kind="compressed",
        model_name=model_name,
        source=source_name,
        source_family=source.get("model_type") or _source_family(source_name),
        architecture=reload.get("loaded_encoder_class" if embedding else "loaded_class")
        or ("BortModel" if embedding else "BortForSequenceClassification"),
        summary=summary,
        warnings=[escape_markdown(str(w)) for w in report.get("warnings") or []],
        datasets=datasets,
        dataset_name=dataset_name,
        settings=_rows(rows),
        shape=_shape_rows(config, extraction.get("layers_kept")),
        shape_title="Chosen shape, per layer",
        front=front_rows,
        recipe=recipe,
        results=results if len(results) > 1 else [],
        results_note=" ".join(note) or None,
        eval_results=eval_results,
        limitations=limitations,
        sentence_transformers=embedding,
        widget=_widget(data.get("examples") or [], embedding),
        text_pair=_first_pair(data),
        single_output=bool(data.get("single_output")),
    )


def _first_pair(data: dict[str, Any]) -> tuple[str, str] | None:
    """The first (text, text_pair) example of a text-pair run (`data.text_pair_column` set), else None."""
    pairs = [example for example in data.get("examples") or [] if isinstance(example, (list, tuple))]
    return (str(pairs[0][0]), str(pairs[0][1])) if data.get("text_pair_column") and pairs else None


def _widget(examples: list[Any], embedding: bool) -> list[dict[str, Any]]:
    """The Hub widget from dev texts of the run's data: a sentence-similarity example (first text against the
    others) for an embedding student, one text classification example per text otherwise ({"text", "text_pair"}
    per pair of a text-pair classifier: the inference input of a pair)."""
    pairs = [example for example in examples if isinstance(example, (list, tuple)) and len(example) == 2]
    if pairs:
        return [{"text": str(a), "text_pair": str(b)} for a, b in pairs if str(a).strip() and str(b).strip()]
    texts = [str(text) for text in examples if str(text).strip()]
    if embedding:
        return [{"source_sentence": texts[0], "sentences": texts[1:]}] if len(texts) > 1 else []
    return [{"text": text} for text in texts]


def display(source: Any) -> str:
    return display_name(source) or "the source"


def _st_onnx_dir(folder: Path) -> Path | None:
    """`onnx/` in the encoder's folder of a sentence-transformers `folder`, else None."""
    from ..models.sentence_transformers_folder import SentenceTransformerLayout

    layout = SentenceTransformerLayout.read(folder)
    return None if layout is None else layout.transformer_output_dir(folder) / ONNX_SUBFOLDER


def write_compressed_card(
    run_dir: str | os.PathLike,
    report: dict[str, Any],
    model_name: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """
    Makes `run_dir/student` the folder to publish: copies the report (`compression_report.json`), the search's
    `front.png` and the student's validated ONNX export (`onnx/`) beside its weights, code and tokenizer, and writes
    its `README.md` card from `report`. Returns the card's path.
    """
    import shutil

    run_dir = Path(run_dir)
    student_dir = run_dir / "student"
    if not student_dir.is_dir():
        raise FileNotFoundError(f"No student folder in {run_dir}: nothing to write a card for.")
    (student_dir / "compression_report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    files = [("compression_report.json", "every setting and number of the run (`hf_bort.compress`)")]
    plot = (report.get("search") or {}).get("plot")
    card = compressed_card(report, model_name or student_dir.resolve().parent.name)
    card.repo_id = repo_id
    if plot and Path(plot).is_file():
        shutil.copyfile(plot, student_dir / "front.png")
        card.front_plot = "front.png"
        files.append(("front.png", "the search's Pareto front"))
    onnx_source = run_dir / ONNX_SUBFOLDER / "student"
    if (onnx_source / "model.onnx").is_file():
        # a sentence-transformers student: in its encoder's folder, where `backend="onnx"` looks (issue 22)
        target = _st_onnx_dir(student_dir) or student_dir / ONNX_SUBFOLDER
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(onnx_source, target)
        where = target.relative_to(student_dir).as_posix()
        files.append((f"{where}/", "the student exported to ONNX (fused fp32 graph, validated vs PyTorch)"))
    card.files = files
    return write_card(card, student_dir)
