"""hf_bort: Bort for any transformer encoder — the Bort model family, conversion, and (in later modules) OSE and Agora.

Importing `hf_bort` registers the `bort` model type with transformers' Auto classes.
"""

from __future__ import annotations

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
    OSESearch,
    SearchResult,
    SearchSpace,
    compute_importance,
    encoder_multiply_adds,
    extract_subnetwork,
)

__version__ = "0.1.0"

register()

__all__ = [
    "BORT_PRESETS",
    "BortConfig",
    "BortForMaskedLM",
    "BortForMultipleChoice",
    "BortForQuestionAnswering",
    "BortForSequenceClassification",
    "BortForTokenClassification",
    "BortModel",
    "BortPreTrainedModel",
    "Candidate",
    "CandidateResult",
    "DistillationConfig",
    "DistillationTrainer",
    "LatencyCache",
    "OSESearch",
    "OnnxExportResult",
    "OnnxValidationError",
    "ParameterCount",
    "SUPPORTED_MODEL_TYPES",
    "SearchResult",
    "SearchSpace",
    "__version__",
    "bort_config_from",
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
