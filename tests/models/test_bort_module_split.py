"""The Bort modules were split into modules with one job each; every name stays importable from its old home, the
Auto classes keep their module (the `auto_map` names it), and every module is under 500 lines."""

from __future__ import annotations

from pathlib import Path

from hf_bort.models import bort
from hf_bort.models.bort import (
    configuration_bort,
    configuration_bort_checks,
    convert,
    convert_config,
    convert_weights,
    modeling_bort,
    modeling_bort_attention,
    modeling_bort_layers,
)

MOVED_FROM_MODELING = {
    modeling_bort_attention: [
        "ALL_ATTENTION_FUNCTIONS",
        "BortSelfAttention",
        "apply_rotary",
        "eager_attention_forward",
        "log_bucket_position",
        "relative_position_bucket",
        "rotary_cos_sin",
        "sdpa_attention_forward",
        "window_mask",
    ],
    modeling_bort_layers: [
        "BortAttention",
        "BortEmbeddings",
        "BortEncoder",
        "BortIntermediate",
        "BortLayer",
        "BortLMPredictionHead",
        "BortOnlyMLMHead",
        "BortOutput",
        "BortPooler",
        "BortPredictionHeadTransform",
        "BortSelfOutput",
        "_is_tracing",
        "_layer_norm",
    ],
}


MOVED_FROM_CONFIGURATION = {
    configuration_bort_checks: [
        "CLASSIFIER_POOLINGS",
        "DISENTANGLED_TERMS",
        "MAX_NUM_HIDDEN_LAYERS",
        "MAX_SIZE",
        "POSITION_EMBEDDING_TYPES",
        "_check_activation",
        "_check_disentangled",
        "_check_float",
        "_check_modern_fields",
        "_check_positive_int",
        "_check_relative_attention",
        "_per_layer",
        "_per_layer_values",
    ],
}


MOVED_FROM_CONVERT = {
    convert_config: [
        "MPNET_MAX_DISTANCE",
        "MPNET_NUM_BUCKETS",
        "ROBERTA_FAMILY",
        "SUPPORTED_MODEL_TYPES",
        "_check_model_type",
        "_deberta_fields",
        "_family_fields",
        "bort_config_from",
        "check_encoder_config",
        "check_model_type",
        "is_encoder_config",
        "unsupported_model_type_message",
    ],
    convert_weights: [
        "_BODY_RENAMES",
        "_DEBERTA_POOLER",
        "_DISTILBERT_CLASSIFIER",
        "_HEAD_RENAMES",
        "_ROBERTA_HEADS",
        "_SUFFIX_TO_TASK",
        "_renamed_state_dict",
        "_source_task",
    ],
}


def test_convert_names_stay_importable_from_convert():
    for module, names in MOVED_FROM_CONVERT.items():
        for name in names:
            assert getattr(convert, name) is getattr(module, name), name
    assert convert_config._check_model_type is convert_config.check_model_type  # the old private alias
    assert bort.bort_config_from is convert.bort_config_from is convert_config.bort_config_from


def test_configuration_bort_names_stay_importable_from_configuration_bort():
    for module, names in MOVED_FROM_CONFIGURATION.items():
        for name in names:
            assert getattr(configuration_bort, name) is getattr(module, name), name
    assert configuration_bort.BortConfig.__module__ == configuration_bort.__name__  # auto_map's configuration_bort


def test_modeling_bort_names_stay_importable_from_modeling_bort():
    for module, names in MOVED_FROM_MODELING.items():
        for name in names:
            assert getattr(modeling_bort, name) is getattr(module, name), name
            if isinstance(getattr(module, name), type) or callable(getattr(module, name)):
                assert getattr(module, name).__module__ == module.__name__, name  # defined there, not re-exported
    assert modeling_bort.ALL_ATTENTION_FUNCTIONS["sdpa"] is modeling_bort_attention.sdpa_attention_forward


def test_auto_classes_keep_their_module_so_the_auto_map_stays_valid():
    for auto_class, model_class in bort.AUTO_CLASSES:
        assert model_class.__module__ == modeling_bort.__name__
        assert modeling_bort.BORT_AUTO_MAP[auto_class.__name__] == f"modeling_bort.{model_class.__name__}"
    assert bort.BortConfig.__module__ == "hf_bort.models.bort.configuration_bort"


def test_the_modeling_file_imports_every_split_module_directly():
    """transformers 4.x copies only the direct relative imports of a local checkpoint's modeling file."""
    from transformers.dynamic_module_utils import get_relative_import_files, get_relative_imports

    direct = set(get_relative_imports(modeling_bort.__file__))
    every = {Path(path).stem for path in get_relative_import_files(modeling_bort.__file__)}
    assert every == direct  # nothing reached only through another module
    split = {"configuration_bort_checks", "modeling_bort_attention", "modeling_bort_layers"}
    assert {"configuration_bort"} | split <= direct


def test_every_bort_module_is_under_500_lines():
    folder = Path(bort.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    split = {"modeling_bort_attention.py", "modeling_bort_layers.py", "configuration_bort_checks.py"}
    assert split | {"convert_config.py", "convert_weights.py"} <= set(sizes)
    assert {name: size for name, size in sizes.items() if size > 500} == {}
