"""Costs of a candidate: exact parameters, analytic multiply-adds, and optionally measured latency (cached)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._lock import exclusive_lock
from ..measure import SEARCH_ENGINES, device_fingerprint, ort_session, time_calls
from ..models.bort.configuration_bort import BortConfig
from ..models.bort.parameters import count_parameters
from .space import Candidate

logger = logging.getLogger(__name__)

ENGINES = SEARCH_ENGINES


# Per-layer fields that follow their layer (ModernBERT's θ, window type and first-layer norm), not the search.
LAYER_FIELDS = ("rotary_theta", "attention_window", "attention_layer_norm")


def layer_fields(base: BortConfig, layers: list[int]) -> dict[str, Any]:
    """The per-layer fields (`LAYER_FIELDS`) of `base` for the source layers `layers`, in that order (a field given
    as one value for every layer stays one value)."""
    out = {}
    for name in LAYER_FIELDS:
        value = getattr(base, name)
        if isinstance(value, list):
            out[name] = [value[index] for index in layers]
    return out


def candidate_config(candidate: Candidate, base: BortConfig, **overrides: Any) -> BortConfig:
    """
    The [`BortConfig`] of `candidate`, taking everything that is not part of the search (vocabulary, positions,
    token types, activation, embedding width, pooler…) from `base` (usually the source converted to Bort).
    `overrides` may give per-layer `num_attention_heads` / `intermediate_size` lists (heterogeneous extraction) and
    the per-layer `LAYER_FIELDS` of the kept layers; without them a candidate of D layers takes those of the
    source's first D layers (repeating the source's pattern when D is larger).
    """
    data = base.to_dict()
    for key in ("architectures", "auto_map", "_name_or_path", "transformers_version", "model_type"):
        data.pop(key, None)
    embedding_size = base.embedding_size
    data.update(
        num_hidden_layers=candidate.num_layers,
        num_attention_heads=candidate.num_heads,
        attention_head_size=candidate.head_size,
        hidden_size=candidate.hidden_size,
        intermediate_size=candidate.intermediate_size,
        embedding_size=embedding_size,
        relative_attention_head_index=None,  # which bias columns the kept heads read is the extraction's business
        **layer_fields(base, [index % base.num_hidden_layers for index in range(candidate.num_layers)]),
    )
    data.update(overrides)
    return BortConfig(**data)


def encoder_multiply_adds(config: BortConfig, sequence_length: int = 128, *, include_pooler: bool = False) -> int:
    """
    Multiply-adds of one forward pass of one sequence of `sequence_length` tokens through the encoder: Q, K, V and
    output projections, attention scores and context (L² per head dimension), the two FFN matrices (three with
    ModernBERT's GLU), ELECTRA's embedding projection, and DeBERTa's position terms (projecting the 2S relative
    embeddings and L·2S scores, per term). Embedding look-ups, LayerNorms, rotary rotations, softmax and activations
    are not multiply-adds and are not counted; task heads are excluded (the pooler only with `include_pooler`).
    Equals half of what `torch.utils.flop_counter.FlopCounterMode` reports for the same ops (tested).
    """
    if sequence_length <= 0:
        raise ValueError(f"`sequence_length` must be a positive integer, got {sequence_length!r}.")
    length, hidden, head = sequence_length, config.hidden_size, config.attention_head_size
    total = 0
    if config.embedding_width != hidden:
        total += length * config.embedding_width * hidden
    for heads, inner in zip(config.layer_num_attention_heads, config.layer_intermediate_sizes, strict=True):
        attention = heads * head
        total += 3 * length * hidden * attention  # Q, K, V
        total += 2 * length * length * attention  # scores and context
        total += length * attention * hidden  # output projection
        total += (3 if config.gated_ffn else 2) * length * hidden * inner  # FFN in (and gate) and out
        for _ in config.pos_att_type or ():  # DeBERTa: project the 2S relative embeddings, then L x 2S scores
            total += 2 * config.relative_span * hidden * attention + length * 2 * config.relative_span * attention
    if include_pooler and config.add_pooling_layer:
        total += hidden * hidden
    return total


@dataclass(frozen=True)
class CandidateCosts:
    """p̂ (exact parameters of the feature-extraction model), î (encoder multiply-adds) and the optional latency."""

    params: int
    encoder_params: int
    multiply_adds: int
    latency_ms: float | None = None


def candidate_costs(candidate: Candidate, base: BortConfig, sequence_length: int = 128) -> CandidateCosts:
    """Exact parameters ([`count_parameters`]) and analytic multiply-adds of `candidate` built on `base`."""
    config = candidate_config(candidate, base)
    count = count_parameters(config)
    return CandidateCosts(
        params=count.total,
        encoder_params=count.encoder,
        multiply_adds=encoder_multiply_adds(config, sequence_length),
    )


def _valid_latency(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def load_latencies(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """
    The cache file's `{device: {shape key: milliseconds}}`, trusting only what is well formed: a file that is not
    JSON, a device entry that is not an object, and a latency that is not a finite number > 0 (negative, zero, NaN,
    a string…) are skipped with a warning naming the file and the entry, so those shapes are measured again (and
    the entry replaced when the file is next written) instead of an impossible latency winning the search.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        logger.warning(
            "Ignoring the latency cache %s: not valid JSON (%s); latencies are measured again.", path, error
        )
        return {}
    if not isinstance(data, dict):
        logger.warning(
            "Ignoring the latency cache %s: expected an object of devices, got %s; latencies are measured again.",
            path,
            type(data).__name__,
        )
        return {}
    out: dict[str, dict[str, float]] = {}
    for device, entries in data.items():
        if not isinstance(entries, dict):
            logger.warning(
                "Ignoring device entry %r of the latency cache %s: expected an object of shapes, got %s.",
                device,
                path,
                type(entries).__name__,
            )
            continue
        kept = out.setdefault(device, {})
        for key, value in entries.items():
            if _valid_latency(value):
                kept[key] = float(value)
            else:
                logger.warning(
                    "Ignoring entry %s of device %r in the latency cache %s: latency %r is not a finite number of "
                    "milliseconds > 0; that shape is measured again.",
                    key,
                    device,
                    path,
                    value,
                )
    return out


class LatencyCache:
    """
    Measured latencies in a JSON file, keyed by device fingerprint, engine, shape and input size, so a shape is only
    ever timed once per machine. Example: `LatencyCache("latency.json").measure(config, batch_size=1)`. Entries of
    the file that are malformed or impossible are skipped with a warning (see [`load_latencies`]).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, repeats: int = 10, warmup: int = 3):
        if repeats <= 0 or warmup < 0:
            raise ValueError(f"`repeats` must be > 0 and `warmup` >= 0, got {repeats!r} and {warmup!r}.")
        self.path = Path(path) if path is not None else None
        self.repeats, self.warmup = repeats, warmup
        self.device = device_fingerprint()
        self._data: dict[str, dict[str, float]] = load_latencies(self.path) if self.path is not None else {}

    @staticmethod
    def shape_key(config: BortConfig, batch_size: int, sequence_length: int, engine: str) -> str:
        key = {
            "engine": engine,
            "batch": batch_size,
            "seq": sequence_length,
            "hidden": config.hidden_size,
            "heads": config.layer_num_attention_heads,
            "head_size": config.attention_head_size,
            "inner": config.layer_intermediate_sizes,
            "embedding": config.embedding_width,
            "vocab": config.vocab_size,
        }
        # Layouts that cost differently at the same sizes get their own entries (BERT-shaped keys stay as they were).
        layout = {
            "relative_bias": config.relative_attention_num_buckets,
            "disentangled": config.pos_att_type or [],
            "rotary": config.position_embedding_type == "rotary",
            "windows": config.layer_attention_window if any(config.layer_attention_window) else [],
            "pre_layer_norm": config.pre_layer_norm,
            "gated_ffn": config.gated_ffn,
        }
        layout = {name: value for name, value in layout.items() if value}
        if layout:
            key["layout"] = layout
        return json.dumps(key, sort_keys=True)

    def get(self, key: str) -> float | None:
        return self._data.get(self.device, {}).get(key)

    def measure(
        self, config: BortConfig, *, batch_size: int = 1, sequence_length: int = 128, engine: str = "pytorch"
    ) -> float:
        """Median latency in milliseconds of one forward pass, measured once per machine and shape, then cached."""
        if engine not in ENGINES:
            raise ValueError(f"`engine` must be one of {ENGINES}, got {engine!r}.")
        key = self.shape_key(config, batch_size, sequence_length, engine)
        cached = self.get(key)
        if cached is not None:
            return cached
        with self.lock():
            value = _measure(config, batch_size, sequence_length, engine, self.repeats, self.warmup)
            if not _valid_latency(value):
                raise RuntimeError(f"Measured an impossible latency {value!r} ms for {key}; not caching it.")
            self._data.setdefault(self.device, {})[key] = value
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True))
                tmp.replace(self.path)
        return value

    def lock(self):
        """
        Context manager holding this cache's lock (`PATH.lock`; none for an in-memory cache): while one process
        times shapes into the file, another one measuring into it fails at once with `hf_bort.InUseError` naming
        it, instead of both timing on the same CPU (skewed numbers) and overwriting each other's file.
        """
        if self.path is None:
            return contextlib.nullcontext()
        return exclusive_lock(self.path.with_name(self.path.name + ".lock"), f"The latency cache {str(self.path)!r}")


def _measure(config: BortConfig, batch_size: int, sequence_length: int, engine: str, repeats: int, warmup: int):
    from ..models.bort.modeling_bort import BortModel

    torch.manual_seed(0)
    model = BortModel(config, add_pooling_layer=False).eval()
    input_ids = torch.randint(5, config.vocab_size, (batch_size, sequence_length))
    attention_mask = torch.ones_like(input_ids)
    if engine == "pytorch":

        def run() -> None:
            with torch.inference_mode():
                model(input_ids=input_ids, attention_mask=attention_mask)

    else:
        session = _onnx_session(model, input_ids, attention_mask)
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}

        def run() -> None:
            session.run(None, feeds)

    times = time_calls(run, warmup, repeats)
    return float(statistics.median(times)) * 1000.0


def _onnx_session(model, input_ids, attention_mask):
    try:
        import onnxruntime  # noqa: F401  (checked here: the export below is slow)
    except ImportError as error:
        raise ImportError('Measuring ONNX Runtime latency needs onnxruntime: pip install "hf-bort[onnx]".') from error
    import tempfile

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.onnx")
        torch.onnx.export(
            _Wrapper(model),
            (input_ids, attention_mask),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamo=False,
        )
        return ort_session(path, torch.get_num_threads())
