"""hf_bort: Bort for any transformer encoder — the Bort model family, conversion, and (in later modules) OSE and Agora.

Importing `hf_bort` registers the `bort` model type with transformers' Auto classes.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

register()

__all__ = [
    "BORT_PRESETS",
    "SUPPORTED_MODEL_TYPES",
    "BortConfig",
    "BortForMaskedLM",
    "BortForMultipleChoice",
    "BortForQuestionAnswering",
    "BortForSequenceClassification",
    "BortForTokenClassification",
    "BortModel",
    "BortPreTrainedModel",
    "ParameterCount",
    "__version__",
    "bort_config_from",
    "convert_to_bort",
    "count_parameters",
    "max_output_difference",
    "register",
]
