"""
Card data for each kind of model hf_bort writes, filled from what the run recorded (`compression_report.json`,
the model's config, an export result, a trainer's state): numbers are copied, never typed; a missing one is omitted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .data import BortCardData, EvalRecord, display_name, escape_markdown, save_card

ONNX_SUBFOLDER = "onnx"
METRIC_TYPES = {"accuracy": ("accuracy", "accuracy"), "macro_f1": ("f1", "macro F1")}
# Embedding students (`compress(task="feature-extraction")`): report key -> (model-index metric type, label).
AGREEMENT_TYPES = {
    "mean_cosine": ("mean_cosine", "mean cosine to the teacher"),
    "nearest_neighbour_agreement": ("nearest_neighbour_agreement", "nearest-neighbour agreement"),
    "spearman_pairwise": ("spearman_pairwise", "Spearman of pairwise similarities"),
}


# --------------------------------------------------------------------------------------------------- formatting
def _pct(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f} %"


def _int(value: Any) -> str | None:
    return None if value is None else f"{int(value):,}"


def _num(value: Any, digits: int = 4) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _rows(pairs: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Setting rows without the missing values."""
    return [(name, str(value)) for name, value in pairs if value is not None and value != ""]


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


# ------------------------------------------------------------------------------------------------ folder facts
def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def complete_from_folder(card: BortCardData, folder: str | os.PathLike) -> BortCardData:
    """Fills what the saved folder tells: architecture, model type, remote code, weights, ONNX files, and whether
    it is a sentence-transformers model (`modules.json`)."""
    folder = Path(folder)
    config = _read_config(folder)
    if card.architecture is None and config.get("architectures"):
        card.architecture = config["architectures"][0]
    if config.get("model_type"):
        card.model_type = config["model_type"]
    auto_map = config.get("auto_map") or {}
    code_files = {value.split(".")[0] + ".py" for value in auto_map.values() if isinstance(value, str)}
    card.remote_code = bool(code_files) and all((folder / name).is_file() for name in code_files)
    card.pytorch_weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    if not card.onnx_files:
        for sub in ("", ONNX_SUBFOLDER):
            found = sorted(p.name for p in (folder / sub).glob("*.onnx")) if (folder / sub).is_dir() else []
            if found:
                card.onnx_files = [f"{sub}/{name}" if sub else name for name in found]
                card.onnx_subfolder = sub or None
                break
    card.onnx_config_code = (
        bool(card.onnx_files) and (folder / (card.onnx_subfolder or "") / "configuration_bort.py").is_file()
    )
    card.sentence_transformers = (folder / "modules.json").is_file()
    from .provenance import complete_provenance

    complete_provenance(card, folder)  # base model, licence, languages, datasets, versions, labels
    return card


def write_card(card: BortCardData, folder: str | os.PathLike) -> Path:
    """Completes `card` from `folder` and writes `folder/README.md`."""
    return save_card(complete_from_folder(card, folder), folder)


def _shape_rows(config: dict[str, Any], layers_kept: list[int] | None = None) -> list[list[Any]]:
    depth = config.get("num_hidden_layers")
    if not depth:
        return []

    def per_layer(value):
        return list(value) if isinstance(value, (list, tuple)) else [value] * depth

    heads = per_layer(config.get("num_attention_heads"))
    ffn = per_layer(config.get("intermediate_size"))
    head_size = config.get("attention_head_size") or (
        config["hidden_size"] // heads[0] if config.get("hidden_size") and heads and heads[0] else None
    )
    header = ["Layer", *(["Source layer"] if layers_kept else []), "Heads", "Head size", "FFN width", "Hidden width"]
    rows = [header]
    for i in range(depth):
        source = [layers_kept[i]] if layers_kept else []
        rows.append([i, *source, heads[i], _cell(head_size), ffn[i], config.get("hidden_size")])
    return rows


def _model_config(model: Any) -> dict[str, Any]:
    return model.config.to_dict() if hasattr(model, "config") else {}


def _count(model: Any) -> int | None:
    try:
        return sum(p.numel() for p in model.parameters())
    except (AttributeError, TypeError):
        return None


def _source_name(source: Any) -> str | None:
    if source is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name_or_path", None) or None


def _shown(name: str | None) -> str | None:
    """A source as the text shows it: its Hub id, or a local folder's name (no local paths in a card), as an escaped
    code span (`escape_markdown`)."""
    shown = display_name(name)
    return escape_markdown(shown, code=True) if shown else None


def _source_family(source: Any) -> str | None:
    config = getattr(source, "config", None)
    if config is not None:
        return getattr(config, "model_type", None)
    if isinstance(source, (str, os.PathLike)) and Path(source, "config.json").is_file():
        return _read_config(Path(source)).get("model_type")
    return None


# ------------------------------------------------------------------------------------------------ converted
def converted_card(model: Any, source: Any, *, max_abs_difference: float | None = None) -> BortCardData:
    """Card data of `convert_to_bort` / `hf-bort convert`: the source's weights under Bort's names."""
    name = _source_name(source)
    family = _source_family(source)
    config = _model_config(model)
    params = _count(model)
    check = (
        f" Its outputs equal the source's within {max_abs_difference:.1e} (largest absolute difference, measured "
        "when it was converted)."
        if max_abs_difference is not None
        else ""
    )
    return BortCardData(
        kind="converted",
        source=name,
        source_family=family,
        architecture=type(model).__name__,
        summary=(
            f"{_shown(name) or 'A ' + (family or 'BERT-family') + ' model'} converted to Bort by hf_bort: the same "
            f"weights and architecture as the source ({family or 'unknown family'}), under Bort's model type, so OSE "
            f"extraction, distillation and Agora apply to it.{check}"
        ),
        settings=_rows(
            [
                ("Source", name and _shown(name)),
                ("Source model type", family),
                ("Class", type(model).__name__),
                ("Parameters", _int(params)),
                ("Max abs output difference vs source", _num(max_abs_difference, 3)),
            ]
        ),
        shape=_shape_rows(config),
        limitations=["A conversion changes no weight: quality, languages and biases are the source's."],
    )


def write_converted_card(
    model: Any, source: Any, folder: str | os.PathLike, *, max_abs_difference: float | None = None
) -> Path:
    card = converted_card(model, source, max_abs_difference=max_abs_difference)
    card.model_name = Path(folder).name or card.model_name
    return write_card(card, folder)


# ------------------------------------------------------------------------------------------------ extracted
def extracted_card(model: Any, source: Any = None) -> BortCardData:
    """Card data of an OSE extraction (`extract_subnetwork`, `OSESearch.extract`, `hf-bort extract`)."""
    name = _source_name(source)
    config = _model_config(model)
    plan = getattr(model, "ose_plan", None)
    layers = list(plan.layers) if plan is not None else None
    params = _count(model)
    return BortCardData(
        kind="extracted",
        source=name,
        source_family=_source_family(source),
        architecture=type(model).__name__,
        summary=(
            f"A sub-network of {_shown(name) if name else 'its source'} extracted by hf_bort's optimal "
            "subarchitecture extraction (OSE): the kept layers, attention heads, FFN neurons and residual dimensions "
            "with their weights sliced from the source. It was not trained after extraction."
        ),
        settings=_rows(
            [
                ("Source", name and _shown(name)),
                ("Layers kept (source indices)", layers and ", ".join(map(str, layers))),
                ("Hidden width", config.get("hidden_size")),
                ("Parameters", _int(params)),
            ]
        ),
        shape=_shape_rows(config, layers),
        limitations=[
            "Not trained after extraction: distil it (`hf-bort distill`) or fine-tune it before use; "
            "its outputs are not the source's."
        ],
    )


def write_extracted_card(model: Any, folder: str | os.PathLike, source: Any = None) -> Path:
    card = extracted_card(model, source)
    card.model_name = Path(folder).name or card.model_name
    return write_card(card, folder)


# ------------------------------------------------------------------------------------------------ distilled
def distilled_card(
    model: Any, teacher: Any, *, settings: dict[str, Any] | None = None, log_history: list[dict] | None = None
) -> BortCardData:
    """Card data of a [`DistillationTrainer`] run (`hf-bort distill`): `settings` are the training settings."""
    name = _source_name(teacher)
    config = _model_config(model)
    losses = [entry["loss"] for entry in log_history or [] if "loss" in entry]
    final = (log_history or [{}])[-1] if log_history else {}
    rows = [("Teacher", name and _shown(name)), ("Parameters", _int(_count(model)))]
    rows += [(escape_markdown(key), escape_markdown(value)) for key, value in (settings or {}).items()]
    rows += [
        ("First logged loss", _num(losses[0]) if losses else None),
        ("Last logged loss", _num(losses[-1]) if losses else None),
        ("Mean training loss", _num(final.get("train_loss"))),
        ("Training steps", final.get("step")),
    ]
    return BortCardData(
        kind="distilled",
        source=name,
        source_family=_source_family(teacher),
        architecture=type(model).__name__,
        summary=(
            f"A Bort student distilled from {_shown(name) if name else 'its teacher'} with hf_bort's "
            "`DistillationTrainer` (the Bort recipe: MLM cross-entropy plus KL to the teacher when both have an MLM "
            "head, hidden-state distillation otherwise)."
        ),
        settings=_rows(rows),
        shape=_shape_rows(config),
        limitations=["Distilled on the texts listed above only; evaluate it on your task before use."],
    )


def write_distilled_card(model: Any, teacher: Any, folder: str | os.PathLike, **kwargs) -> Path:
    card = distilled_card(model, teacher, **kwargs)
    card.model_name = Path(folder).name or card.model_name
    return write_card(card, folder)


# ------------------------------------------------------------------------------------------------ Agora
def agora_card(trainer: Any, model_name: str | None = None) -> BortCardData:
    """Card data of an [`AgoraTrainer`] run: its settings, rounds and the dev metrics it logged."""
    args = trainer.args
    model = trainer.model
    source = getattr(model.config, "_name_or_path", None) or None
    history = list(getattr(trainer, "agora_history", []) or [])
    rounds = [["Round", "Dev accuracy", "Dev errors", "Drawn", "Accepted", "Train size"]]
    for stats in history:
        rounds.append(
            [
                stats.round,
                _pct(stats.dev_accuracy),
                stats.dev_errors,
                stats.samples_drawn,
                stats.accepted,
                stats.train_size,
            ]
        )
    evals = [entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)]
    last_eval = evals[-1] if evals else {}
    eval_results = []
    for key, (metric, label) in METRIC_TYPES.items():
        value = last_eval.get(f"eval_{key}")
        if value is not None:
            eval_results.append(EvalRecord(metric, "validation", float(value), name=f"dev {label}"))
    settings = [
        ("Starting checkpoint", source and _shown(source)),
        ("Agora rounds", args.agora_rounds),
        ("Sampler", args.agora_sampler),
        ("Samples per error", args.agora_samples_per_error),
        ("Radius", args.agora_radius),
        ("Labeller confidence threshold", args.agora_confidence_threshold),
        ("Replay", args.agora_replay),
        ("Learning rate", args.learning_rate),
        ("Weight decay", args.weight_decay),
        ("Warm-up ratio", getattr(args, "warmup_ratio", None) or None),
        ("Warm-up steps", getattr(args, "warmup_steps", None) or None),
        ("Batch size", args.per_device_train_batch_size),
        ("Epochs per round", args.num_train_epochs if args.max_steps <= 0 else None),
        ("Max steps", args.max_steps if args.max_steps > 0 else None),
        ("Seed", args.seed),
        ("Training steps", trainer.state.global_step or None),
        ("Parameters", _int(_count(model))),
    ]
    return BortCardData(
        kind="agora",
        model_name=model_name or Path(args.output_dir).name or "model",
        source=source,
        source_family=getattr(model.config, "model_type", None),
        architecture=type(model).__name__,
        model_type=getattr(model.config, "model_type", None),
        summary=(
            f"Fine-tuned with Agora (hf_bort's `AgoraTrainer`){' from ' + _shown(source) if source else ''}: "
            "train, find the dev points the model gets wrong, sample new points near them, label them with a "
            "second model, add the confident ones to the training set, and repeat."
        ),
        settings=_rows(settings),
        tables=[("Agora rounds", rounds)] if len(rounds) > 1 else [],
        eval_results=eval_results,
        results=[["Metric", "Dev (seen by Agora)"]] + [[r.name, _pct(r.value)] for r in eval_results]
        if eval_results
        else [],
        agora=True,
        limitations=[
            "Agora samples near the dev set's errors, so dev metrics are not held-out: judge the model on a test "
            "split it never saw.",
        ],
    )


# ------------------------------------------------------------------------------------------------ ONNX
def _int8_verdict(report: dict | None) -> str | None:
    """What `quantize` chose, in words: the variant, or why only fp32 was kept (never silently)."""
    if not report:
        return None
    if report.get("chosen"):
        return escape_markdown(f"{report['chosen']} ({report.get('reason', '')})")
    return escape_markdown(f"kept fp32 only: {report.get('reason', '')}")


def onnx_card(result: Any, source: Any = None) -> BortCardData:
    """Card data of an `export_onnx` folder (`hf-bort export`), from its [`OnnxExportResult`]."""
    name = _source_name(source)
    quantized = getattr(result, "quantized_path", None)
    return BortCardData(
        kind="onnx",
        source=name,
        summary=(
            f"{_shown(name) if name else 'A hf_bort model'} exported to ONNX by hf_bort "
            f"({result.task}), validated against PyTorch on real sentences"
            f"{'; with a dynamic int8 copy' if quantized else ''}."
        ),
        settings=_rows(
            [
                ("Source", name and _shown(name)),
                ("Task", result.task),
                ("Model type", result.model_type),
                ("Inputs", ", ".join(result.inputs)),
                ("Outputs", ", ".join(result.outputs)),
                ("Graph", result.fusion_summary() if hasattr(result, "fusion_summary") else None),
                ("Max abs difference ONNX Runtime fp32 vs PyTorch", _num(result.max_abs_diff, 3)),
                ("Validation examples", result.num_validation_examples),
                ("int8 max abs difference vs PyTorch", _num(getattr(result, "int8_max_abs_diff", None), 3)),
                ("int8 argmax agreement with PyTorch", _pct(getattr(result, "argmax_agreement", None))),
                ("int8", _int8_verdict(getattr(result, "quantization", None))),
            ]
        ),
        limitations=["ONNX only: no PyTorch weights in this folder."],
    )
