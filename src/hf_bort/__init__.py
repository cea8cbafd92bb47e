"""hf_bort: Bort for any transformer encoder — the Bort model family, conversion, and (in later modules) OSE and Agora.

Importing `hf_bort` registers the `bort` model type with transformers' Auto classes.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

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
