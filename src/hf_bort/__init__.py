"""hf_bort: Bort for any transformer encoder — the Bort model family, conversion, and (in later modules) OSE and Agora.

Importing `hf_bort` registers the `bort` model type with transformers' Auto classes.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .models.bort import register

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from ._lock import InUseError
    from .agora import (
        AGORA_GRID,
        AgoraCallback,
        AgoraConfig,
        AgoraState,
        AgoraTrainer,
        CallableLabeller,
        EmbeddingSampler,
        Labeller,
        LabelResult,
        ModelLabeller,
        PipelineLabeller,
        PoolSampler,
        RoundStats,
        TokenSubstitutionSampler,
        as_labeller,
    )
    from .compress import CompressionConfig, CompressionResult, compress
    from .exporters import OnnxExportResult, OnnxValidationError, export_onnx, register_onnx
    from .models.bort import (
        BORT_PRESETS,
        SUPPORTED_MODEL_TYPES,
        BortConfig,
        BortForMaskedLM,
        BortForMultipleChoice,
        BortForQuestionAnswering,
        BortForSequenceClassification,
        BortForTokenClassification,
        BortModel,
        BortPreTrainedModel,
        ParameterCount,
        bort_config_from,
        convert_to_bort,
        count_parameters,
        max_output_difference,
        register,
    )
    from .ose import (
        Candidate,
        CandidateResult,
        DistillationConfig,
        DistillationTrainer,
        LatencyCache,
        OSEConfig,
        OSESearch,
        SearchResult,
        SearchSpace,
        compute_importance,
        encoder_multiply_adds,
        extract_subnetwork,
    )


# Public name -> the module it lives in. `import hf_bort` imports only the Bort model family (and registers it with
# transformers' Auto classes); the rest (Trainer, datasets, accelerate, optimum...) is imported on first use of a
# name, like trl's `_LazyModule`.
_LAZY: dict[str, str] = {
    "AGORA_GRID": ".agora",
    "AgoraCallback": ".agora",
    "AgoraConfig": ".agora",
    "AgoraState": ".agora",
    "AgoraTrainer": ".agora",
    "BORT_PRESETS": ".models.bort",
    "BortConfig": ".models.bort",
    "BortForMaskedLM": ".models.bort",
    "BortForMultipleChoice": ".models.bort",
    "BortForQuestionAnswering": ".models.bort",
    "BortForSequenceClassification": ".models.bort",
    "BortForTokenClassification": ".models.bort",
    "BortModel": ".models.bort",
    "BortPreTrainedModel": ".models.bort",
    "CallableLabeller": ".agora",
    "Candidate": ".ose",
    "CandidateResult": ".ose",
    "CompressionConfig": ".compress",
    "CompressionResult": ".compress",
    "DistillationConfig": ".ose",
    "DistillationTrainer": ".ose",
    "EmbeddingSampler": ".agora",
    "InUseError": "._lock",
    "LabelResult": ".agora",
    "Labeller": ".agora",
    "LatencyCache": ".ose",
    "ModelLabeller": ".agora",
    "OSEConfig": ".ose",
    "OSESearch": ".ose",
    "OnnxExportResult": ".exporters",
    "OnnxValidationError": ".exporters",
    "ParameterCount": ".models.bort",
    "PipelineLabeller": ".agora",
    "PoolSampler": ".agora",
    "RoundStats": ".agora",
    "SUPPORTED_MODEL_TYPES": ".models.bort",
    "SearchResult": ".ose",
    "SearchSpace": ".ose",
    "TokenSubstitutionSampler": ".agora",
    "as_labeller": ".agora",
    "bort_config_from": ".models.bort",
    "compress": ".compress",
    "compute_importance": ".ose",
    "convert_to_bort": ".models.bort",
    "count_parameters": ".models.bort",
    "encoder_multiply_adds": ".ose",
    "export_onnx": ".exporters",
    "extract_subnetwork": ".ose",
    "max_output_difference": ".models.bort",
    "register": ".models.bort",
    "register_onnx": ".exporters",
}


# Sub-packages reachable as attributes (`hf_bort.exporters.export_onnx` after `import hf_bort`), imported on first use.
_SUBMODULES = frozenset({"agora", "assets", "cards", "cli", "compress", "demo", "exporters", "hub", "measure", "ose"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES and name not in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """`hf_bort.compress` is the function `compress` (as `from hf_bort import compress` has always given), although a
    sub-package has the same name: when the import system binds the imported sub-package `hf_bort.compress` on this
    package, the function it exports is bound instead. The sub-package stays importable by its dotted name
    (`from hf_bort.compress import pipeline`, `sys.modules["hf_bort.compress"]`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and name in _SUBMODULES and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

register()

__all__ = [
    "AGORA_GRID",
    "AgoraCallback",
    "AgoraConfig",
    "AgoraState",
    "AgoraTrainer",
    "BORT_PRESETS",
    "BortConfig",
    "BortForMaskedLM",
    "BortForMultipleChoice",
    "BortForQuestionAnswering",
    "BortForSequenceClassification",
    "BortForTokenClassification",
    "BortModel",
    "BortPreTrainedModel",
    "CallableLabeller",
    "Candidate",
    "CandidateResult",
    "CompressionConfig",
    "CompressionResult",
    "DistillationConfig",
    "DistillationTrainer",
    "EmbeddingSampler",
    "InUseError",
    "LabelResult",
    "Labeller",
    "LatencyCache",
    "ModelLabeller",
    "OSEConfig",
    "OSESearch",
    "OnnxExportResult",
    "OnnxValidationError",
    "ParameterCount",
    "PipelineLabeller",
    "PoolSampler",
    "RoundStats",
    "SUPPORTED_MODEL_TYPES",
    "SearchResult",
    "SearchSpace",
    "TokenSubstitutionSampler",
    "__version__",
    "as_labeller",
    "bort_config_from",
    "compress",
    "compute_importance",
    "convert_to_bort",
    "count_parameters",
    "encoder_multiply_adds",
    "export_onnx",
    "extract_subnetwork",
    "max_output_difference",
    "register",
    "register_onnx",
]
