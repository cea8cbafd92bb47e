"""
The checks `compress` makes before any work: the source model (its type, config and weight shapes, its tokenizer,
a classifier's head)
and the budget against the source (sequence lengths within its positions, some candidate within the multiply-add or
latency budget); and the search space the settings describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import CompressionConfig
from .run import read_json_object


def source_kind(model: str) -> tuple[Any, bool]:
    """
    (config, is a fine-tuned sequence classifier). Refuses before any work, naming the file: a `config.json` that
    is not a JSON object, weights that cannot be read or whose shapes do not fit the config, and model types with no
    weight mapping (they would start from random weights).
    """
    from transformers import AutoConfig

    from ..models.bort.convert import SUPPORTED_MODEL_TYPES
    from ..models.sentence_transformers_folder import transformer_source

    folder = Path(transformer_source(model))
    config_file = folder / "config.json"
    if config_file.is_file():
        problem = read_json_object(config_file)[1]
        if problem:
            raise ValueError(f"`model` {model!r}: {config_file} {problem}; a model's config.json is a JSON object.")
    try:
        config = AutoConfig.from_pretrained(folder if folder.is_dir() else transformer_source(model))
    except OSError as error:
        raise ValueError(f"`model` {model!r} cannot be loaded: {error}") from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(
            f"`model` {model!r}: {config_file} is not a usable config ({type(error).__name__}: {error})"
        ) from error
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"`model` is a {config.model_type!r} model; compress extracts weights from "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} checkpoints only (other types would start from random weights)."
        )
    if folder.is_dir():
        check_weights(model, folder, config)
    # A config naming a classifier is a fine-tuned source: its head must have weights (checked by
    # `load_source_classifier` in stage 1, an error naming the tensors: issue 19). Heads other than the task's (an MLM
    # named by a sentence-transformers checkpoint) are decided from the weights where the encoder is loaded
    # (models.source_class).
    architectures = getattr(config, "architectures", None) or []
    return config, any(name.endswith("ForSequenceClassification") for name in architectures)


def weight_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    state = torch.load(file, map_location="meta", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a state dict")
    return {name: tuple(value.shape) for name, value in state.items() if isinstance(value, torch.Tensor)}


def check_weights(model: str, folder: Path, config) -> None:
    """The weight files of `folder` can be read and every tensor the encoder has fits `config`'s shapes."""
    from transformers import AutoModel

    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ValueError(f"`model` folder {str(folder)!r} holds no weights (model.safetensors or pytorch_model.bin).")
    with torch.device("meta"):
        encoder = AutoModel.from_config(config)
    expected = {name: tuple(value.shape) for name, value in encoder.state_dict().items()}
    prefix = f"{encoder.base_model_prefix}."
    wrong = []
    for file in files:
        try:
            shapes = weight_shapes(file)
        except Exception as error:  # noqa: BLE001 - any reader error: the file is not usable weights
            raise ValueError(
                f"`model` {model!r}: {file} cannot be read as weights ({type(error).__name__}: {error}). The file "
                "is damaged or not a checkpoint: save or download the model again."
            ) from None
        for name, shape in shapes.items():
            key = name[len(prefix) :] if name.startswith(prefix) else name
            if key in expected and expected[key] != shape:
                wrong.append(f"{name} {list(shape)} (config: {list(expected[key])})")
    if wrong:
        raise ValueError(
            f"`model` {model!r}: the weights in {', '.join(str(f) for f in files)} do not fit "
            f"{folder / 'config.json'} ({len(wrong)} tensors, e.g. {'; '.join(wrong[:3])}): the config and the "
            "weights come from different models."
        )


def source_tokenizer(model: str):
    """The source's tokenizer, or an error naming the folder and the files a tokenizer needs (before any work)."""
    from transformers import AutoTokenizer

    from ..models.sentence_transformers_folder import transformer_source

    advice = (
        "compress needs the source's tokenizer files beside its weights (tokenizer.json, or vocab.txt / vocab.json + "
        "merges.txt / a sentencepiece *.model, with tokenizer_config.json); save the tokenizer into the model folder."
    )
    folders = [Path(model), Path(transformer_source(model))]
    if (
        folders[0].is_dir()
        and not any((folder / name).is_file() for folder in folders for name in TOKENIZER_VOCAB_FILES)
        and not any(next(folder.glob("*.model"), None) for folder in folders)
    ):
        # transformers 5 builds an empty tokenizer (special tokens only) from a folder without these files
        raise ValueError(f"`model` {model!r} has no usable tokenizer (no vocabulary file in {folders[-1]}): {advice}")
    try:
        return AutoTokenizer.from_pretrained(model)
    except Exception as error:  # noqa: BLE001 - transformers' errors for missing files range from OSError to TypeError
        raise ValueError(
            f"`model` {model!r} has no usable tokenizer ({type(error).__name__}: {error}): {advice}"
        ) from None


# A tokenizer's vocabulary lives in one of these (or a sentencepiece `*.model`).
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")


def load_source_classifier(path: str | Path, field: str):
    """
    The fine-tuned source classifier; a checkpoint without its classifier weights is refused (never a teacher with
    a random head).
    """
    from transformers import AutoModelForSequenceClassification

    from ..models.heads import load_with_head

    return load_with_head(
        AutoModelForSequenceClassification,
        path,
        "text-classification",
        field=field,
        advice="Give the classifier's complete checkpoint, or the pretrained encoder (its config's `architectures` "
        "without *ForSequenceClassification) to fine-tune a new head on the dataset.",
    )


def position_limit(bort_config) -> int | None:
    """Tokens the source's position table holds (RoBERTa-style tables start at pad_token_id + 1); None: no table."""
    if bort_config.position_embedding_type == "absolute":
        return bort_config.max_position_embeddings
    if bort_config.position_embedding_type == "roberta":
        return bort_config.max_position_embeddings - bort_config.pad_token_id - 1
    return None


def budget_check(config: CompressionConfig, source_config) -> dict[str, Any]:
    """
    Settings checked against the source before any training: `max_length` (and, for a measured latency budget,
    `cost_sequence_length`) within its positions; some candidate within the multiply-add budget; and with
    `max_latency_ms`, the cheapest such candidate timed on this CPU within it.
    """
    from ..models.bort.convert import bort_config_from
    from ..ose.costs import candidate_costs
    from ..ose.space import Candidate

    bort_config = bort_config_from(source_config)
    limit = position_limit(bort_config)
    latency_budget = config.max_latency_ratio is not None or config.max_latency_ms is not None
    lengths = ("max_length", "cost_sequence_length") if latency_budget else ("max_length",)
    for name in lengths:
        if limit is not None and getattr(config, name) > limit:
            offset = "" if bort_config.position_embedding_type == "absolute" else " minus the RoBERTa offset"
            raise ValueError(
                f"`{name}` {getattr(config, name)} exceeds the {limit} positions of the source `model` "
                f"(its max_position_embeddings {bort_config.max_position_embeddings}{offset}): give {limit} or less."
            )
    space = search_space(config, bort_config)
    full = Candidate(
        bort_config.num_hidden_layers,
        max(bort_config.layer_num_attention_heads),
        bort_config.hidden_size,
        max(bort_config.layer_intermediate_sizes),
        bort_config.attention_head_size,
    )
    source_macs = candidate_costs(full, bort_config, config.cost_sequence_length).multiply_adds
    candidates = [Candidate.from_key(config.candidate)] if config.candidate else space.candidates()
    ratios = {
        c.key: candidate_costs(c, bort_config, config.cost_sequence_length).multiply_adds / source_macs
        for c in candidates
    }
    fitting = list(ratios)
    if config.max_cost_ratio is not None:
        fitting = [key for key, ratio in ratios.items() if ratio <= config.max_cost_ratio]
        if not fitting:
            cheapest = min(ratios, key=ratios.get)
            what = "`candidate`" if config.candidate else "No candidate of the search space"
            raise ValueError(
                f"{what} does not fit `max_cost_ratio` {config.max_cost_ratio}: the cheapest, {cheapest}, has "
                f"{ratios[cheapest]:.3f} of the source's multiply-adds."
            )
    checks = {"candidates_in_space": len(space), "candidates_within_multiply_adds_budget": len(fitting)}
    if config.max_latency_ms is not None:
        checks["cheapest_candidate_latency_ms"] = check_latency_budget(config, bort_config, fitting, ratios)
    return checks


def check_latency_budget(config: CompressionConfig, bort_config, keys: list[str], ratios: dict[str, float]):
    """Times the candidate with the fewest multiply-adds as the search will; refuses a `max_latency_ms` below it."""
    from ..ose.costs import LatencyCache, candidate_config
    from ..ose.space import Candidate

    cheapest = min(keys, key=ratios.get)
    latency = LatencyCache(config.resolved_latency_cache()).measure(  # the search's table: timed once per machine
        candidate_config(Candidate.from_key(cheapest), bort_config),
        batch_size=1,
        sequence_length=config.cost_sequence_length,
        engine=config.latency_engine,
    )
    if latency > config.max_latency_ms:
        raise ValueError(
            f"`max_latency_ms` {config.max_latency_ms} is below what even the cheapest candidate, {cheapest}, takes "
            f"on this CPU: {latency:.3f} ms ({config.latency_engine}, batch 1, {config.cost_sequence_length} "
            "tokens). Raise max_latency_ms, or shorten cost_sequence_length, or add smaller shapes to the space."
        )
    return latency


def search_space(config: CompressionConfig, bort_config):
    from ..ose.space import SearchSpace

    return SearchSpace.from_source(
        bort_config,
        num_layers=config.axis("search_layers"),
        num_heads=config.axis("search_heads"),
        hidden_sizes=config.axis("search_hidden"),
        intermediate_sizes=config.axis("search_intermediate"),
    )
