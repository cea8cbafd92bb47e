"""The blog's torus toy: a ring in 2-D whose label alternates over six angular sectors; a tiny MLP classifier."""

from __future__ import annotations

import math

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class ToyConfig(PretrainedConfig):
    model_type = "agora_toy_mlp"

    def __init__(self, input_dim: int = 2, hidden: int = 64, num_labels: int = 2, **kwargs):
        super().__init__(num_labels=num_labels, **kwargs)
        self.input_dim = input_dim
        self.hidden = hidden


class ToyMLP(PreTrainedModel):
    """A 2-layer MLP over continuous features passed as `inputs_embeds` ([batch, input_dim])."""

    config_class = ToyConfig
    base_model_prefix = "toy"

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(config.input_dim, config.hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(config.hidden, config.hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(config.hidden, config.num_labels),
        )
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            torch.nn.init.zeros_(module.bias)

    def forward(self, inputs_embeds=None, labels=None, **kwargs):
        logits = self.net(inputs_embeds)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def torus_label(points: torch.Tensor) -> torch.Tensor:
    """The true label function: alternating six angular sectors."""
    angle = torch.atan2(points[..., 1], points[..., 0]) % (2 * math.pi)
    return ((angle // (math.pi / 3)) % 2).long()


def torus_points(n: int, generator: torch.Generator, max_angle: float = 2 * math.pi) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * max_angle
    radius = 2.0 + 0.3 * torch.randn(n, generator=generator)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)


def torus_dataset(points: torch.Tensor) -> list[dict]:
    labels = torus_label(points)
    return [{"inputs_embeds": p, "labels": int(y)} for p, y in zip(points, labels, strict=True)]


def torus_labeller(samples: list[dict]) -> list[int]:
    """The correct labeller: the true label function on the sampled features."""
    return torus_label(torch.stack([torch.as_tensor(s["inputs_embeds"]) for s in samples])).tolist()


@torch.no_grad()
def accuracy(model, points: torch.Tensor) -> float:
    model.eval()
    return float((model(inputs_embeds=points).logits.argmax(-1) == torus_label(points)).float().mean())
