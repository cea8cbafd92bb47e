"""The Bort model family: configuration, models, conversion and the exact parameter counter."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_bort import BORT_PRESETS, BortConfig
from .convert import SUPPORTED_MODEL_TYPES, bort_config_from, convert_to_bort, max_output_difference
from .modeling_bort import (
    BortForMaskedLM,
    BortForMultipleChoice,
    BortForQuestionAnswering,
    BortForSequenceClassification,
    BortForTokenClassification,
    BortModel,
    BortPreTrainedModel,
)
from .parameters import ParameterCount, count_parameters

AUTO_CLASSES = (
    (AutoModel, BortModel),
    (AutoModelForMaskedLM, BortForMaskedLM),
    (AutoModelForSequenceClassification, BortForSequenceClassification),
    (AutoModelForTokenClassification, BortForTokenClassification),
    (AutoModelForQuestionAnswering, BortForQuestionAnswering),
    (AutoModelForMultipleChoice, BortForMultipleChoice),
)


def register() -> None:
    """
    Registers Bort with transformers' Auto classes, and marks the classes so that `save_pretrained` ships their code
    and an `auto_map` (plain transformers then loads the checkpoint with `trust_remote_code=True`). Idempotent;
    `import hf_bort` calls it.
    """
    AutoConfig.register("bort", BortConfig, exist_ok=True)
    BortConfig.register_for_auto_class()
    for auto_class, model_class in AUTO_CLASSES:
        auto_class.register(BortConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


__all__ = [
    "AUTO_CLASSES",
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
    "bort_config_from",
    "convert_to_bort",
    "count_parameters",
    "max_output_difference",
    "register",
]
