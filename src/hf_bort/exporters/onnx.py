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

import contextlib
import io
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._outputs import check_not_overlapping, check_overwrite, clean_stale, make_workdir, replace_dir
from .quantize import QUANTIZE_CHOICES, Int8Config

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "hf-bort[onnx]"'

SUPPORTED_TASKS: tuple[str, ...] = (
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "token-classification",
    "question-answering",
    "multiple-choice",
)

# transformers Auto class per task (names, so transformers is imported lazily too).
_AUTO_CLASS = {
    "feature-extraction": "AutoModel",
    "fill-mask": "AutoModelForMaskedLM",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "multiple-choice": "AutoModelForMultipleChoice",
}
# Class-name suffix -> task, to infer the task of an in-memory model.
_CLASS_SUFFIX_TO_TASK = {
    "ForMaskedLM": "fill-mask",
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForMultipleChoice": "multiple-choice",
    "Model": "feature-extraction",
}
# What to export instead of a checkpoint without the task's head (`hf_bort.models.heads.check_head_loaded`).
_HEAD_ADVICE = (
    "Export a checkpoint fine-tuned for {task!r}, or choose the task its head was trained for (--task "
    "feature-extraction for a bare encoder)."
)

# Real English sentences (movie-review style, varied lengths) used to validate every export.
VALIDATION_TEXTS: tuple[str, ...] = (
    "A gripping, beautifully shot thriller that never lets go.",
    "The plot is thin and the jokes fall flat.",
    "I laughed, I cried, and then I wanted to see it again.",
    "An overlong mess with a few good performances buried inside it.",
    "Its quiet charm sneaks up on you.",
    "Nothing in this film makes sense, least of all the ending.",
    "The cast is terrific, especially in the smaller roles, and the score is lovely.",
    "Dull.",
    "A sharp, funny script elevates what could have been a routine comedy.",
    "By the time the credits roll you will have forgotten most of it.",
    "The director knows exactly when to hold back and when to push.",
    "Too long, too loud and too pleased with itself.",
    "It is the rare sequel that improves on the original in almost every way.",
    "The dialogue sounds like it was written by a committee.",
    "Warm, wise and often very funny.",
    "Even the special effects look tired.",
)


class OnnxValidationError(ValueError):
    """The exported ONNX model's outputs differ from PyTorch's by more than the tolerance."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


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


def require_onnx() -> None:
    """Import optimum's ONNX exporter and onnxruntime, or raise an ImportError with the install command."""
    try:
        import onnxruntime  # noqa: F401
        import optimum.exporters.onnx  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs optimum, optimum-onnx and onnxruntime ({error}). Install them with: {INSTALL_HINT}"
        ) from error


_BORT_ONNX_CONFIG: type | None = None


def _bort_onnx_config_class() -> type:
    """Build (once) the optimum OnnxConfig subclass for Bort; optimum is imported here, not at module import."""
    global _BORT_ONNX_CONFIG
    if _BORT_ONNX_CONFIG is not None:
        return _BORT_ONNX_CONFIG
    require_onnx()
    from optimum.exporters.onnx.model_configs import BertOnnxConfig

    class BortOnnxConfig(BertOnnxConfig):
        """ONNX config for `model_type="bort"`: BERT's inputs, `token_type_ids` only if the model has token types."""

        DEFAULT_ONNX_OPSET = 14  # SDPA's scaled_dot_product_attention exports cleanly from opset 14.

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            if self.task == "multiple-choice":
                dynamic_axis = {0: "batch_size", 1: "num_choices", 2: "sequence_length"}
            else:
                dynamic_axis = {0: "batch_size", 1: "sequence_length"}
            names = ["input_ids", "attention_mask"]
            if getattr(self._config, "type_vocab_size", 0) > 0:
                names.append("token_type_ids")
            return {name: dict(dynamic_axis) for name in names}

        def generate_dummy_inputs(self, framework: str = "pt", **kwargs):
            # optimum draws token types from [0, 2); Bort usually has one type (or none): keep them in range.
            dummy = super().generate_dummy_inputs(framework=framework, **kwargs)
            if "token_type_ids" in dummy:
                dummy["token_type_ids"] = dummy["token_type_ids"] % self._config.type_vocab_size
            return dummy

    BortOnnxConfig.__module__ = __name__
    _BORT_ONNX_CONFIG = BortOnnxConfig
    return BortOnnxConfig


def register_onnx() -> type:
    """Register [`BortOnnxConfig`] with optimum's `TasksManager` for the six encoder tasks; returns the class.

    Idempotent. Called by [`export_onnx`]; call it yourself before using optimum APIs on Bort directly.
    """
    config_class = _bort_onnx_config_class()
    from optimum.exporters.tasks import TasksManager

    supported = TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES["transformers"].get("bort", {}).get("onnx", {})
    if set(SUPPORTED_TASKS) - set(supported):
        TasksManager.create_register("onnx", overwrite_existing=True)("bort", *SUPPORTED_TASKS)(config_class)
    return config_class


def __getattr__(name: str) -> Any:  # lazy public name: hf_bort.exporters.onnx.BortOnnxConfig
    if name == "BortOnnxConfig":
        return _bort_onnx_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def infer_task(model: PreTrainedModel) -> str:
    """The export task of an in-memory model, from its class name (`BortForSequenceClassification` -> ...)."""
    name = type(model).__name__
    for suffix, task in _CLASS_SUFFIX_TO_TASK.items():
        if name.endswith(suffix):
            return task
    raise ValueError(f"task could not be inferred from {name}; pass task= one of {', '.join(SUPPORTED_TASKS)}.")


def _load_model(model_or_path: Any, task: str | None) -> tuple[PreTrainedModel, str, Any]:
    """Return (model in eval mode, task, tokenizer or None)."""
    import transformers
    from transformers import PreTrainedModel

    import hf_bort  # noqa: F401  (registers the bort Auto classes)

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
    _check_model_type(config.model_type, task or "feature-extraction")
    check_encoder_config(config, "The ONNX export")  # GPT-2, T5…: refused before loading, with convert's message
    task = task or "feature-extraction"
    auto_class = getattr(transformers, _AUTO_CLASS[task])
    model = load_with_head(
        auto_class, model_or_path, task, field="model_or_path", advice=_HEAD_ADVICE.format(task=task)
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_or_path)
    except (OSError, ValueError, KeyError, TypeError):
        tokenizer = None
    return model.eval(), task, tokenizer


def supported_model_types(task: str = "feature-extraction") -> list[str]:
    """Model types the exporter handles for `task`: bort plus every transformers type optimum-onnx supports."""
    register_onnx()
    from optimum.exporters.tasks import TasksManager

    types = {
        model_type
        for model_type, backends in TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES["transformers"].items()
        if task in backends.get("onnx", {})
    }
    return sorted(types | {"bort"})


def _check_model_type(model_type: str | None, task: str) -> None:
    register_onnx()
    supported = supported_model_types(task)
    if model_type not in supported:
        raise ValueError(
            f"model_type {model_type!r} cannot be exported for task {task!r}. Supported model types include "
            f"bort, bert, roberta, xlm-roberta, camembert, electra ({len(supported)} in all)."
        )


def _onnx_config(model: PreTrainedModel, task: str):
    from optimum.exporters.tasks import TasksManager

    constructor = TasksManager.get_exporter_config_constructor(
        exporter="onnx", model=model, task=task, library_name="transformers"
    )
    return constructor(model.config, task=task)


def validation_inputs(
    model: PreTrainedModel, task: str, tokenizer: Any = None, texts: list[str] | tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Tokenized real sentences (or, without a tokenizer, seeded random ids with padding) for validation."""
    import torch

    texts = list(texts if texts is not None else VALIDATION_TEXTS)
    if len(texts) < 3:
        raise ValueError(f"texts must hold at least 3 sentences for validation; got {len(texts)}.")
    if tokenizer is not None:
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        inputs = {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
    else:
        generator = torch.Generator().manual_seed(0)
        lengths = [min(4 + len(text.split()), 32) for text in texts]
        width = max(lengths)
        low = min(5, model.config.vocab_size - 1)
        input_ids = torch.randint(low, model.config.vocab_size, (len(texts), width), generator=generator)
        attention_mask = torch.zeros_like(input_ids)
        for row, length in enumerate(lengths):
            attention_mask[row, :length] = 1
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        input_ids = input_ids.masked_fill(attention_mask == 0, pad)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if getattr(model.config, "type_vocab_size", 0) > 0:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
    if task == "multiple-choice":  # pair consecutive sentences as two choices
        pairs = len(texts) // 2
        inputs = {key: value[: 2 * pairs].reshape(pairs, 2, -1) for key, value in inputs.items()}
    return inputs


def _torch_outputs(model: PreTrainedModel, inputs: dict[str, torch.Tensor], names: list[str]) -> dict[str, Any]:
    import torch

    with torch.inference_mode():
        output = model(**inputs)
    return {name: output[name].float().numpy() for name in names}


def _ort_outputs(onnx_path: Path, inputs: dict[str, torch.Tensor], names: list[str]) -> dict[str, Any]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed_names = {item.name for item in session.get_inputs()}
    feed = {key: value.numpy() for key, value in inputs.items() if key in feed_names}
    values = session.run(names, feed)
    return dict(zip(names, values, strict=True))


def _max_abs_diff(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> float:
    import numpy as np

    worst = 0.0
    for name, ref in reference.items():
        diff = np.abs(ref - candidate[name])
        if diff.ndim >= mask.ndim + 1 and diff.shape[: mask.ndim] == mask.shape:  # ignore padded positions
            diff = diff[mask.astype(bool)]
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def argmax_agreement(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> float:
    """Fraction of argmax predictions shared by two output sets (see [`OnnxExportResult`])."""
    import numpy as np

    agree, total = 0, 0
    for name, ref in reference.items():
        cand = candidate[name]
        if name in ("last_hidden_state",):
            ref_nn, cand_nn = _nearest_neighbours(ref, mask), _nearest_neighbours(cand, mask)
            agree += int((ref_nn == cand_nn).sum())
            total += ref_nn.size
            continue
        if name == "pooler_output":
            continue
        ref_arg, cand_arg = ref.argmax(-1), cand.argmax(-1)
        if ref_arg.shape == mask.shape:  # token-level: only real tokens count
            keep = mask.astype(bool)
            ref_arg, cand_arg = ref_arg[keep], cand_arg[keep]
        agree += int((ref_arg == cand_arg).sum())
        total += int(np.size(ref_arg))
    return agree / total if total else float("nan")


def _nearest_neighbours(hidden: Any, mask: Any) -> Any:
    """For each sentence, the index of the most cosine-similar other sentence (mean-pooled embeddings)."""
    import numpy as np

    hidden = hidden.reshape(-1, *hidden.shape[-2:])
    mask = mask.reshape(-1, mask.shape[-1]).astype(hidden.dtype)[..., None]
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    similarity = pooled @ pooled.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(-1)


def _pooled_cosine(reference: Any, candidate: Any, mask: Any) -> tuple[float, float]:
    """(min, mean) cosine similarity between the mean-pooled sentence embeddings of two hidden-state arrays."""
    import numpy as np

    def pooled(hidden: Any) -> Any:
        hidden = hidden.reshape(-1, *hidden.shape[-2:])
        weights = mask.reshape(-1, mask.shape[-1]).astype(hidden.dtype)[..., None]
        vectors = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)

    cosine = (pooled(reference) * pooled(candidate)).sum(-1)
    return float(cosine.min()), float(cosine.mean())


_ATTENTION_OPS = ("Attention", "MultiHeadAttention")


def _num_layers(config: Any) -> int | None:
    for name in ("num_hidden_layers", "n_layers", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _optimize_graph(source: Path, target: Path) -> dict[str, int]:
    """Run ONNX Runtime's transformer optimizer on `source`, write the fused graph to `target`; return the counts.

    `num_heads=0, hidden_size=0`: heads and widths are read per layer from the graph (Bort's per-layer head counts,
    inner widths other than the hidden size). The raw 2-D attention mask is kept (`use_raw_attention_mask`): the
    `bert` default turns it into sequence lengths, which is wrong for left padding or masks with holes.
    `opt_level=0`: only the Python fusions, so the written graph does not depend on this machine's CPU.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    # The fusions log a warning per layer whose attention width differs from the hidden size (supported: the node
    # gets qkv_hidden_sizes); keep that noise out of the user's log while the optimizer runs.
    # Some fusions also print() their reasons for not matching: send that to the debug log, not to stdout (where
    # `hf-bort export` writes its JSON).
    noisy = logging.getLogger("fusion_attention")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            optimized = optimize_model(
                str(source), model_type="bert", num_heads=0, hidden_size=0, optimization_options=options, opt_level=0
            )
    finally:
        noisy.setLevel(level)
        if printed.getvalue().strip():
            logger.debug("ONNX Runtime's transformer optimizer printed: %s", printed.getvalue().strip())
    counts = {name: int(count) for name, count in optimized.get_fused_operator_statistics().items()}
    optimized.save_model_to_file(str(target))
    return counts


def _add_shape_info(onnx_path: Path) -> None:
    """Annotate a fused graph with the types / shapes of its tensors, in place (ORT's symbolic shape inference knows
    the com.microsoft fused operators; ONNX's does not, and the quantizer needs the type of every MatMul input)."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    inferred = SymbolicShapeInference.infer_shapes(onnx.load(str(onnx_path)), auto_merge=True)
    onnx.save(inferred, str(onnx_path))


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
            (`MatMulNBits`, int8 weights and activations scaled per block)
            or `"auto"`: build them all, measure agreement with fp32 on `validation_texts` and latency, keep the
            fastest that meets `int8`'s thresholds (see `hf_bort.exporters.quantize`); the choice is written as
            `model_quantized.onnx`, every variant is reported in `quantization_report.json`.
        tokenizer: tokenizer for validation inputs and to save alongside (loaded from the path when not given).
        opset: ONNX opset (default: the ONNX config's, 14).
        atol: largest accepted absolute difference between ONNX Runtime fp32 and PyTorch outputs.
        validation_texts: sentences for validation and int8 agreement (default: `VALIDATION_TEXTS`, 16 movie-review
            sentences; pass a few hundred of your own for `quantize="auto"`: 0.995 agreement needs 200+).
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
            calibration_texts=calibration_texts,
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

    _check_model_type(model.config.model_type, task)
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

    onnx_config = _onnx_config(model, task)
    onnx_path = workdir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        input_names, output_names = export(model, onnx_config, onnx_path, opset=opset)
    model.config.save_pretrained(workdir)
    if tokenizer is not None:
        tokenizer.save_pretrained(workdir)
    inputs = {key: value for key, value in inputs.items() if key in input_names}
    mask = inputs["attention_mask"].numpy()
    reference = _torch_outputs(model, inputs, output_names)
    fp32 = _ort_outputs(onnx_path, inputs, output_names)
    max_diff = _max_abs_diff(reference, fp32, mask)
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
        num_layers=_num_layers(model.config),
    )
    if optimize:
        fp32 = _optimize_into(result, model, task, inputs, reference, fp32, mask, onnx_path, atol)
    if quantize is not None:
        from .quantize import quantize_exported

        if result.optimized:
            _add_shape_info(onnx_path)
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
            int8_outputs = _ort_outputs(quantized_path, inputs, output_names)
            result.quantized_path = str(quantized_path)
            result.int8_max_abs_diff = _max_abs_diff(reference, int8_outputs, mask)
            result.argmax_agreement = argmax_agreement(reference, int8_outputs, mask)
            result.int8_argmax_agreement_vs_fp32 = argmax_agreement(fp32, int8_outputs, mask)
            if "last_hidden_state" in output_names:
                low, mean = _pooled_cosine(reference["last_hidden_state"], int8_outputs["last_hidden_state"], mask)
                result.extra.update(int8_embedding_cosine_min=low, int8_embedding_cosine_mean=mean)
            if min_argmax_agreement is not None and result.argmax_agreement < min_argmax_agreement:
                raise OnnxValidationError(
                    f"int8 export agrees with PyTorch on {result.argmax_agreement:.1%} of argmax predictions, below "
                    f"min_argmax_agreement={min_argmax_agreement:.1%}.",
                    result.int8_max_abs_diff,
                )
    return result


def _optimize_into(
    result: OnnxExportResult,
    model: PreTrainedModel,
    task: str,
    inputs: dict[str, torch.Tensor],
    reference: dict[str, Any],
    fp32: dict[str, Any],
    mask: Any,
    onnx_path: Path,
    atol: float,
) -> dict[str, Any]:
    """Fuse `onnx_path` in place when the fused graph validates; update `result`; return the ORT outputs kept.

    An optimizer that cannot handle the graph (an exception) leaves the plain graph, with the reason in
    `result.extra["optimize_error"]`; a fused graph that does not match PyTorch within `atol` is an error.
    """
    fused_path = onnx_path.with_name("model_fused.onnx")
    try:
        counts = _optimize_graph(onnx_path, fused_path)
    except Exception as error:  # noqa: BLE001 - the optimizer's pattern matching fails in many ways; keep the plain graph
        fused_path.unlink(missing_ok=True)
        result.extra["optimize_error"] = f"{type(error).__name__}: {error}"
        logger.warning("ONNX Runtime's transformer optimizer failed (%s); model.onnx is the plain graph.", error)
        return fp32
    fused = _ort_outputs(fused_path, inputs, result.outputs)
    fused_diff = _max_abs_diff(reference, fused, mask)
    if not fused_diff <= atol:
        fused_path.unlink(missing_ok=True)
        raise OnnxValidationError(
            f"The optimized (fused) ONNX graph of {model.config.model_type} ({task}) failed validation: max abs "
            f"difference {fused_diff:.3g} between ONNX Runtime and PyTorch exceeds atol={atol:g} (the plain export "
            f"differs by {result.max_abs_diff:.3g}). Pass optimize=False (--no-optimize) to write the plain graph.",
            fused_diff,
        )
    os.replace(fused_path, onnx_path)
    attention = sum(counts.get(name, 0) for name in _ATTENTION_OPS)
    result.optimized = True
    result.fused_operators = counts
    result.unoptimized_max_abs_diff = result.max_abs_diff
    result.max_abs_diff = fused_diff
    result.attention_fused = result.num_layers is not None and attention == result.num_layers
    if not result.attention_fused:
        logger.warning(
            "ONNX Runtime fused attention in %d of %s layers of this %s graph (fused operators: %s).",
            attention,
            result.num_layers,
            model.config.model_type,
            {name: count for name, count in counts.items() if count},
        )
    return fused
