"""ONNX export of Bort (and of the BERT-family encoders it is extracted from) through Optimum.

optimum-onnx knows nothing about `model_type="bort"`. Three things make the export work:

1. [`BortOnnxConfig`]: BERT's ONNX config, with `token_type_ids` only when `config.type_vocab_size > 0` (Bort
   models built from RoBERTa have no token-type embedding). Per-layer head counts / FFN widths need nothing
   special: the ONNX graph is traced, so every layer keeps its own shapes.
2. Registration with `TasksManager.create_register("onnx")` for the six encoder tasks, so that
   `TasksManager.get_exporter_config_constructor(model_type="bort", ...)` and the ORTModel classes find it.
3. The low-level `optimum.exporters.onnx.export`, which (unlike `main_export` / `onnx_export_from_model`) does not
   infer the library from `model.__class__.__module__` (ours is `hf_bort...`, not `transformers...`).

Every export is validated here with ONNX Runtime against PyTorch on tokenized real sentences; int8 exports report
the agreement of argmax predictions instead of a max difference.

By default (`optimize=True`) the exported graph then goes through ONNX Runtime's transformer optimizer
(`onnxruntime.transformers.optimizer.optimize_model`, model type `bert`, heads detected per layer, raw 2-D attention
mask), which fuses each layer's attention into one `Attention` node, residual + LayerNorm into
`SkipLayerNormalization`, bias + GELU into `BiasGelu` and the embeddings into `EmbedLayerNormalization`. The fused
graph is validated against PyTorch like the plain one and is what `model.onnx` holds; the fused operator counts
are reported in [`OnnxExportResult`] (`fused_operators`), never assumed.

optimum, optimum-onnx and onnxruntime are imported lazily: `import hf_bort.exporters` works without them.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._outputs import check_not_overlapping, check_overwrite, clean_stale, make_workdir, replace_dir
from .agreement import argmax_agreement, max_abs_diff, pooled_cosine
from .onnx_config import (
    AUTO_CLASS,
    INSTALL_HINT,
    SUPPORTED_TASKS,
    bort_onnx_config_class,
    check_exportable_model_type,
    infer_task,
    onnx_config_for,
    register_onnx,
    require_onnx,
    supported_model_types,
)
from .optimize import add_shape_info, encoder_depth, optimize_into
from .quantize import QUANTIZE_CHOICES, Int8Config
from .validation import VALIDATION_TEXTS, OnnxValidationError, ort_outputs, torch_outputs, validation_inputs

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# What to export instead of a checkpoint without the task's head (`hf_bort.models.heads.check_head_loaded`).
_HEAD_ADVICE = (
    "Export a checkpoint fine-tuned for {task!r}, or choose the task its head was trained for (--task "
    "feature-extraction for a bare encoder)."
)


def __getattr__(name: str) -> Any:  # lazy public name: hf_bort.exporters.onnx.BortOnnxConfig
    if name == "BortOnnxConfig":
        return bort_onnx_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class OnnxExportResult:
    """What [`export_onnx`] wrote and how it validated.

    `max_abs_diff` compares the fp32 ONNX model with PyTorch (all outputs, all validation examples).
    For an int8 export, `int8_max_abs_diff` is reported for information and `argmax_agreement` is the fraction of
    argmax predictions (per example / per token for logits; the nearest neighbour among the validation sentences for
    `last_hidden_state`) on which the int8 model agrees with PyTorch.

    With `optimize=True`, `model.onnx` is the fused graph and `max_abs_diff` is measured on it;
    `unoptimized_max_abs_diff` is the plain export's. `fused_operators` counts the nodes of each fused operator type
    in the written graph (ONNX Runtime's `get_fused_operator_statistics`), `num_layers` is the encoder depth and
    `attention_fused` is True when every layer got an `Attention` / `MultiHeadAttention` node. Without optimization
    (or when the optimizer could not run, see `extra["optimize_error"]`) `fused_operators` is empty.

    With `quantize`, `quantization` is the int8 report (also written as `quantization_report.json`): the target
    CPU, every variant built with its agreement with fp32 (and, for `"auto"`, its latency), the variant `chosen`
    (None when `"auto"` kept fp32 only) and why. `quantized_path` is None when no int8 model was written.
    """

    output_dir: str
    task: str
    model_type: str
    onnx_path: str
    inputs: list[str]
    outputs: list[str]
    max_abs_diff: float
    atol: float
    num_validation_examples: int
    quantized_path: str | None = None
    int8_max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    int8_argmax_agreement_vs_fp32: float | None = None
    quantization: dict[str, Any] | None = None
    optimized: bool = False
    fused_operators: dict[str, int] = field(default_factory=dict)
    num_layers: int | None = None
    attention_fused: bool | None = None
    unoptimized_max_abs_diff: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fusion_summary(self) -> str:
        """One line on what the optimizer fused, e.g. `fused: Attention 2/2 layers, SkipLayerNormalization 4, ...`."""
        if not self.optimized:
            reason = self.extra.get("optimize_error")
            return f"not optimized ({reason})" if reason else "not optimized (optimize=False)"
        attention = self.fused_operators.get("Attention", 0) + self.fused_operators.get("MultiHeadAttention", 0)
        others = [
            f"{name} {count}"
            for name, count in self.fused_operators.items()
            if count and name not in ("Attention", "MultiHeadAttention")
        ]
        return ", ".join([f"fused: Attention {attention}/{self.num_layers} layers", *others])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_task(task: str | None) -> None:
    if task is not None and task not in SUPPORTED_TASKS:
        raise ValueError(f"task must be one of {', '.join(SUPPORTED_TASKS)}; got {task!r}.")


def _check_quantize(quantize: str | None) -> None:
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be None or one of {', '.join(QUANTIZE_CHOICES)}; got {quantize!r}.")


def _prepare_output_dir(output_dir: Path, overwrite: bool) -> Path:
    """Check `output_dir` before any work; return a fresh temporary directory next to it (same filesystem).

    Our own stale temporary folders beside it (from killed exports) are removed first, and a folder set aside by an
    export killed mid-replacement is put back (see `hf_bort._outputs`).
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {str(output_dir)!r} exists and is not a directory.")
    try:
        clean_stale(output_dir)
    except OSError as error:
        logger.warning("Could not clean stale temporary folders beside %s: %s", output_dir, error)
    check_overwrite(output_dir, overwrite)
    try:
        return make_workdir(output_dir)
    except OSError as error:
        raise PermissionError(f"output_dir {str(output_dir)!r} is not writable: {error}") from error


def _load_model(model_or_path: Any, task: str | None) -> tuple[PreTrainedModel, str, Any]:
    """Return (model in eval mode, task, tokenizer or None)."""
    import transformers
    from transformers import PreTrainedModel

    from ..models.bort import register

    register()  # the bort Auto classes

    if isinstance(model_or_path, PreTrainedModel):
        model = model_or_path
        task = task or infer_task(model)
        return model.eval(), task, None
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(f"model_or_path must be a PreTrainedModel or a path / Hub id; got {type(model_or_path)}.")
    from .._sources import check_source
    from ..models.bort.convert import check_encoder_config
    from ..models.heads import load_with_head

    check_source(model_or_path, "model_or_path")
    config = transformers.AutoConfig.from_pretrained(model_or_path)
    check_exportable_model_type(config.model_type, task or "feature-extraction")
    check_encoder_config(config, "The ONNX export")  # GPT-2, T5…: refused before loading, with convert's message
    task = task or "feature-extraction"
    auto_class = getattr(transformers, AUTO_CLASS[task])
    model = load_with_head(
        auto_class, model_or_path, task, field="model_or_path", advice=_HEAD_ADVICE.format(task=task)
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_or_path)
    except (OSError, ValueError, KeyError, TypeError):
        tokenizer = None
    return model.eval(), task, tokenizer


def export_onnx(
    model_or_path: PreTrainedModel | str | os.PathLike,
    output_dir: str | os.PathLike,
    task: str | None = None,
    quantize: str | None = None,
    *,
    tokenizer: Any = None,
    opset: int | None = None,
    atol: float = 1e-4,
    validation_texts: list[str] | tuple[str, ...] | None = None,
    min_argmax_agreement: float | None = None,
    int8_per_channel: bool = True,
    overwrite: bool = False,
    optimize: bool = True,
    int8: Int8Config | None = None,
    calibration_texts: list[str] | tuple[str, ...] | None = None,
) -> OnnxExportResult:
    """Export a Bort model (or a BERT / RoBERTa / ... encoder) to ONNX with optimum, validate it, optionally quantize.

    Everything is written to a temporary directory next to `output_dir` and moved into place only when the export
    validated, so a failed export leaves nothing behind.

    Args:
        model_or_path: a `PreTrainedModel` or a checkpoint path / Hub id (`bort` needs `import hf_bort`, done here).
        output_dir: directory that will hold `model.onnx`, `config.json`, the tokenizer and, with `quantize`,
            `model_quantized.onnx`; the layout the `ORTModelFor*` classes load. For a local sentence-transformers
            folder (`modules.json`), a copy of that folder with the encoder's ONNX in its transformer module's
            `onnx/` sub-folder, the layout `SentenceTransformer(output_dir, backend="onnx")` loads
            (see `hf_bort.exporters.sentence_transformers_onnx`).
        task: one of `SUPPORTED_TASKS`; inferred from the model class for an in-memory model, default
            `feature-extraction` for a path.
        quantize: `None`, `"dynamic-int8"` (dynamic, per-channel weights), `"static-int8"` (QDQ, calibrated on
            `calibration_texts`), `"selective-int8"` (dynamic with the most sensitive nodes, measured, kept fp32),
            `"progressive-int8"` (as few of those as the agreement thresholds need), `"blockwise-int8"`
            (`MatMulNBits`, int8 weights and activations scaled per block), `"smoothed-int8"` (dynamic after
            SmoothQuant-style outlier smoothing, function-preserving in fp32)
            or `"auto"`: build them all, measure agreement with fp32 on `validation_texts` and latency, keep the
            fastest that meets `int8`'s thresholds (see `hf_bort.exporters.quantize`); the choice is written as
            `model_quantized.onnx`, every variant is reported in `quantization_report.json`.
        tokenizer: tokenizer for validation inputs and to save alongside (loaded from the path when not given).
        opset: ONNX opset (default: the ONNX config's, 14).
        atol: largest accepted absolute difference between ONNX Runtime fp32 and PyTorch outputs.
        validation_texts: sentences for validation and int8 agreement (default: `VALIDATION_TEXTS`, 16 movie-review
            sentences; pass a few hundred of your own for `quantize="auto"`: 0.995 agreement needs 200+); (text,
            text_pair) pairs for a cross-encoder, tokenised as pairs.
        min_argmax_agreement: with `quantize`, fail when int8 agrees with PyTorch on fewer argmax predictions.
        int8_per_channel: quantize weights per output channel (more accurate) rather than per tensor.
        overwrite: replace a non-empty `output_dir`.
        int8: [`Int8Config`]: target CPU (default: this one's), thresholds and `best_effort` for `"auto"`,
            the variants compared, calibration and latency settings.
        calibration_texts: texts for static calibration and node sensitivity (default: the validation texts, which
            the report then says; use texts the validation does not contain).
        optimize: run ONNX Runtime's transformer optimizer (fused `Attention`, `SkipLayerNormalization`, `BiasGelu`,
            `EmbedLayerNormalization`) and write the fused graph, validated against PyTorch, as `model.onnx`
            (quantized from it with `quantize`); `False` writes the plain exported graph.

    Returns:
        [`OnnxExportResult`].

    Example:

    ```python
    >>> from hf_bort import BortConfig, BortForSequenceClassification
    >>> from hf_bort.exporters import export_onnx
    >>> model = BortForSequenceClassification(BortConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=[4, 2], intermediate_size=[37, 16], type_vocab_size=0))
    >>> result = export_onnx(model, "bort-onnx", quantize="dynamic-int8")
    >>> result.max_abs_diff < 1e-4
    True
    ```
    """
    from .sentence_transformers_onnx import export_sentence_transformer, is_sentence_transformers_folder

    if is_sentence_transformers_folder(model_or_path):  # the ST layout: <transformer module>/onnx/model.onnx
        return export_sentence_transformer(
            model_or_path, output_dir, task, quantize=quantize, tokenizer=tokenizer, opset=opset, atol=atol,
            validation_texts=validation_texts, min_argmax_agreement=min_argmax_agreement,
            int8_per_channel=int8_per_channel, overwrite=overwrite, optimize=optimize, int8=int8,
            calibration_texts=calibration_texts, export_encoder=export_onnx,
        )  # fmt: skip
    _check_task(task)
    _check_quantize(quantize)
    if not isinstance(optimize, bool):
        raise TypeError(f"optimize must be True or False; got {optimize!r}.")
    if not atol > 0:
        raise ValueError(f"atol must be > 0; got {atol}.")
    require_onnx()
    if quantize is not None:
        int8 = int8 if int8 is not None else Int8Config()
        if not isinstance(int8, Int8Config):
            raise TypeError(f"int8 must be an Int8Config; got {type(int8).__name__}.")
        int8.resolved_target()  # an undetectable CPU fails here, before the export
        if calibration_texts is not None and (
            isinstance(calibration_texts, str) or not all(isinstance(text, str) for text in calibration_texts)
        ):
            raise TypeError("calibration_texts must be a list of strings.")
    output_dir = Path(output_dir)
    if isinstance(model_or_path, (str, os.PathLike)):
        check_not_overlapping(model_or_path, output_dir, "model_or_path")
        if Path(model_or_path).absolute() == output_dir.absolute():
            raise ValueError("output_dir must differ from model_or_path.")
    elif getattr(model_or_path, "name_or_path", None):  # a model loaded from a local folder: that folder too
        check_not_overlapping(model_or_path.name_or_path, output_dir, "model_or_path")
    model, task, loaded_tokenizer = _load_model(model_or_path, task)
    tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
    from ..models.bort.convert import check_encoder_config

    check_exportable_model_type(model.config.model_type, task)
    check_encoder_config(model.config, "The ONNX export")
    # Fail on bad inputs before the (long) export.
    inputs = validation_inputs(model, task, tokenizer, validation_texts)
    calibration = None
    if quantize is not None:
        texts = calibration_texts if calibration_texts is not None else validation_texts
        calibration = validation_inputs(model, task, tokenizer, texts)
        calibration_source = "calibration_texts" if calibration_texts is not None else "the validation texts"
        if calibration_texts is None and quantize != "dynamic-int8":  # dynamic-int8 calibrates nothing
            logger.warning("No calibration_texts given: int8 calibration uses the validation texts.")
    workdir = _prepare_output_dir(output_dir, overwrite)
    try:
        result = _export_into(
            model,
            task,
            tokenizer,
            inputs,
            workdir,
            quantize,
            opset,
            atol,
            min_argmax_agreement,
            int8_per_channel,
            optimize,
            int8,
            calibration,
            calibration_source if quantize is not None else None,
        )
        _write_card(result, model_or_path, model, workdir, output_dir)
        replace_dir(workdir, output_dir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    result.output_dir = str(output_dir)
    result.onnx_path = str(output_dir / "model.onnx")
    if result.quantized_path is not None:
        result.quantized_path = str(output_dir / "model_quantized.onnx")
    return result


def _write_card(result: OnnxExportResult, model_or_path: Any, model: PreTrainedModel, workdir: Path, output_dir: Path):
    """The export folder's `README.md` model card (hf_bort.cards), written before the folder is moved into place."""
    from ..cards import onnx_card, write_card

    source = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else model.name_or_path or None
    card = onnx_card(result, source)
    card.model_name = output_dir.name or card.model_name
    card.repo_id = card.repo_id or output_dir.as_posix()  # the snippets load this folder (a push names the repo)
    card.architecture = type(model).__name__
    write_card(card, workdir)


def _max_positions(config: Any) -> int | None:
    """Longest input the position table allows (RoBERTa-style positions start after the padding index)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    roberta_style = config.model_type in ("roberta", "xlm-roberta", "camembert") or (
        getattr(config, "position_embedding_type", None) == "roberta"
    )
    return positions - ((config.pad_token_id or 0) + 1) if roberta_style else positions


def _calibration_batches(calibration: dict[str, torch.Tensor], input_names: list[str], size: int) -> list[dict]:
    rows = calibration["input_ids"].shape[0]
    feeds = {key: value.numpy() for key, value in calibration.items() if key in input_names}
    return [{key: value[start : start + size] for key, value in feeds.items()} for start in range(0, rows, size)]


def _export_into(
    model: PreTrainedModel,
    task: str,
    tokenizer: Any,
    inputs: dict[str, torch.Tensor],
    workdir: Path,
    quantize: str | None,
    opset: int | None,
    atol: float,
    min_argmax_agreement: float | None,
    int8_per_channel: bool = True,
    optimize: bool = True,
    int8: Int8Config | None = None,
    calibration: dict[str, torch.Tensor] | None = None,
    calibration_source: str | None = None,
) -> OnnxExportResult:
    import warnings

    from optimum.exporters.onnx import export

    onnx_config = onnx_config_for(model, task)
    onnx_path = workdir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        input_names, output_names = export(model, onnx_config, onnx_path, opset=opset)
    model.config.save_pretrained(workdir)
    if tokenizer is not None:
        tokenizer.save_pretrained(workdir)
    inputs = {key: value for key, value in inputs.items() if key in input_names}
    mask = inputs["attention_mask"].numpy()
    reference = torch_outputs(model, inputs, output_names)
    fp32 = ort_outputs(onnx_path, inputs, output_names)
    max_diff = max_abs_diff(reference, fp32, mask)
    if not max_diff <= atol:
        raise OnnxValidationError(
            f"ONNX export of {model.config.model_type} ({task}) failed validation: max abs difference "
            f"{max_diff:.3g} between ONNX Runtime and PyTorch exceeds atol={atol:g}.",
            max_diff,
        )
    result = OnnxExportResult(
        output_dir=str(workdir),
        task=task,
        model_type=model.config.model_type,
        onnx_path=str(onnx_path),
        inputs=list(input_names),
        outputs=list(output_names),
        max_abs_diff=max_diff,
        atol=atol,
        num_validation_examples=int(inputs["input_ids"].shape[0]),
        num_layers=encoder_depth(model.config),
    )
    if optimize:
        fp32 = optimize_into(result, model, task, inputs, reference, fp32, mask, onnx_path, atol)
    if quantize is not None:
        from .quantize import quantize_exported

        if result.optimized:
            add_shape_info(onnx_path)
        report = quantize_exported(
            workdir,
            quantize,
            validation_inputs={key: value.numpy() for key, value in inputs.items()},
            fp32_outputs=fp32,
            calibration_batches=_calibration_batches(calibration, input_names, int8.calibration_batch_size),
            config=int8,
            fused=result.optimized,
            per_channel=int8_per_channel,
            vocab_size=getattr(model.config, "vocab_size", None),
            max_seq_len=_max_positions(model.config),
            calibration_source=calibration_source,
        )
        result.quantization = report
        result.extra["int8_per_channel"] = int8_per_channel
        if report["chosen"] is not None:
            quantized_path = workdir / "model_quantized.onnx"
            int8_outputs = ort_outputs(quantized_path, inputs, output_names)
            result.quantized_path = str(quantized_path)
            result.int8_max_abs_diff = max_abs_diff(reference, int8_outputs, mask)
            result.argmax_agreement = argmax_agreement(reference, int8_outputs, mask)
            result.int8_argmax_agreement_vs_fp32 = argmax_agreement(fp32, int8_outputs, mask)
            if "last_hidden_state" in output_names:
                low, mean = pooled_cosine(reference["last_hidden_state"], int8_outputs["last_hidden_state"], mask)
                result.extra.update(int8_embedding_cosine_min=low, int8_embedding_cosine_mean=mean)
            if min_argmax_agreement is not None and result.argmax_agreement < min_argmax_agreement:
                raise OnnxValidationError(
                    f"int8 export agrees with PyTorch on {result.argmax_agreement:.1%} of argmax predictions, below "
                    f"min_argmax_agreement={min_argmax_agreement:.1%}.",
                    result.int8_max_abs_diff,
                )
    return result


__all__ = [
    "INSTALL_HINT",
    "QUANTIZE_CHOICES",
    "SUPPORTED_TASKS",
    "VALIDATION_TEXTS",
    "OnnxExportResult",
    "OnnxValidationError",
    "export_onnx",
    "infer_task",
    "register_onnx",
    "require_onnx",
    "supported_model_types",
    "validation_inputs",
]
