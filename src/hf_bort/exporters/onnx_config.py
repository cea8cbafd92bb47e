"""Optimum's ONNX configuration for Bort and the tasks / model types hf_bort exports (optimum's `model_configs`
and `TasksManager` side of the export; see [`hf_bort.exporters.onnx`] for the export itself).

optimum-onnx knows nothing about `model_type="bort"`: [`BortOnnxConfig`] is BERT's ONNX config with `token_type_ids`
only when `config.type_vocab_size > 0`, registered with `TasksManager.create_register("onnx")` for the six encoder
tasks. optimum is imported lazily: importing this module needs neither optimum nor onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel

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
AUTO_CLASS = {
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


def bort_onnx_config_class() -> type:
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
    config_class = bort_onnx_config_class()
    from optimum.exporters.tasks import TasksManager

    supported = TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES["transformers"].get("bort", {}).get("onnx", {})
    if set(SUPPORTED_TASKS) - set(supported):
        TasksManager.create_register("onnx", overwrite_existing=True)("bort", *SUPPORTED_TASKS)(config_class)
    return config_class


def __getattr__(name: str) -> Any:  # lazy public name: hf_bort.exporters.onnx.BortOnnxConfig
    if name == "BortOnnxConfig":
        return bort_onnx_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def infer_task(model: PreTrainedModel) -> str:
    """The export task of an in-memory model, from its class name (`BortForSequenceClassification` -> ...)."""
    name = type(model).__name__
    for suffix, task in _CLASS_SUFFIX_TO_TASK.items():
        if name.endswith(suffix):
            return task
    raise ValueError(f"task could not be inferred from {name}; pass task= one of {', '.join(SUPPORTED_TASKS)}.")


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


def check_exportable_model_type(model_type: str | None, task: str) -> None:
    """Refuse a model type optimum-onnx (with Bort registered) cannot export for `task`."""
    register_onnx()
    supported = supported_model_types(task)
    if model_type not in supported:
        raise ValueError(
            f"model_type {model_type!r} cannot be exported for task {task!r}. Supported model types include "
            f"bort, bert, roberta, xlm-roberta, camembert, electra ({len(supported)} in all)."
        )


def onnx_config_for(model: PreTrainedModel, task: str):
    """optimum's ONNX config instance for `model` and `task` (Bort's once registered)."""
    from optimum.exporters.tasks import TasksManager

    constructor = TasksManager.get_exporter_config_constructor(
        exporter="onnx", model=model, task=task, library_name="transformers"
    )
    return constructor(model.config, task=task)
