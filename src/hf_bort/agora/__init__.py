"""Agora: fine-tuning that grows the training set with labelled samples drawn near the dev-set errors."""

from .callback import AgoraCallback, AgoraState, RoundStats
from .config import AgoraConfig
from .labellers import CallableLabeller, Labeller, LabelResult, ModelLabeller, PipelineLabeller, as_labeller
from .samplers import EmbeddingSampler, PoolSampler, TokenSubstitutionSampler
from .trainer import AGORA_GRID, AgoraTrainer

__all__ = [
    "AGORA_GRID",
    "AgoraCallback",
    "AgoraConfig",
    "AgoraState",
    "AgoraTrainer",
    "CallableLabeller",
    "EmbeddingSampler",
    "LabelResult",
    "Labeller",
    "ModelLabeller",
    "PipelineLabeller",
    "PoolSampler",
    "RoundStats",
    "TokenSubstitutionSampler",
    "as_labeller",
]
