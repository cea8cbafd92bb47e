"""
Importance of a Bort source's prunable units (layers, attention heads, FFN neurons, residual dimensions) from
calibration text: what [`hf_bort.ose.extract`] keeps when it slices a candidate out of the source.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..models.bort.modeling_bort import BortModel, BortPreTrainedModel
from .config import IMPORTANCE_METHODS


@dataclass
class Importance:
    """Importance scores of a Bort source: one per layer, per head (per layer), per FFN neuron and per residual dim."""

    layers: torch.Tensor  # [L]
    heads: list[torch.Tensor]  # L x [A_l]
    neurons: list[torch.Tensor]  # L x [I_l]
    dims: torch.Tensor  # [H]
    method: str = "activation"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "layers": self.layers.tolist(),
            "heads": [h.tolist() for h in self.heads],
            "neurons": [n.tolist() for n in self.neurons],
            "dims": self.dims.tolist(),
        }


def _base(model: BortPreTrainedModel) -> BortModel:
    return model if isinstance(model, BortModel) else model.bort


def _valid_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = batch.get("attention_mask")
    return torch.ones_like(batch["input_ids"], dtype=torch.bool) if mask is None else mask.bool()


def _corrupt(input_ids: torch.Tensor, mask_token_id: int | None, vocab_size: int, generator: torch.Generator):
    chosen = torch.rand(input_ids.shape, generator=generator) < 0.15
    replacement = (
        torch.full_like(input_ids, mask_token_id)
        if mask_token_id is not None
        else torch.randint(0, vocab_size, input_ids.shape, generator=generator)
    )
    return torch.where(chosen, replacement, input_ids), chosen


def compute_importance(
    model: BortPreTrainedModel,
    batches: Iterable[dict[str, torch.Tensor]],
    *,
    method: str = "activation",
    mask_token_id: int | None = None,
    seed: int = 0,
) -> Importance:
    """
    Scores every prunable unit of a Bort `model` on calibration `batches` (dicts with `input_ids`, `attention_mask`).

    - `"activation"`: a head scores the mean norm of its contribution after the output projection; an FFN neuron the
      mean |activation| times the norm of its output weights; a residual dimension the mean |value| of the residual
      stream (embeddings and every LayerNorm output); a layer the mean relative change ‖out − in‖/‖in‖ it makes.
    - `"gradient"`: first-order Taylor scores |∂loss/∂gate| of multiplicative gates (all 1) on heads, neurons,
      residual dims and layer updates, with the MLM loss when the model has an MLM head and otherwise a denoising
      self-distillation loss (MSE between the output on 15%-corrupted input and the clean output).
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"`method` must be one of {IMPORTANCE_METHODS}, got {method!r}.")
    base = _base(model)
    config = base.config
    layers = base.encoder.layer
    n_layers, head_size = len(layers), config.attention_head_size
    device = next(model.parameters()).device  # scored where the model is (the scores come back on the CPU)

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, requires_grad=True, device=device)

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n, device=device)

    gate_heads = [ones(n) for n in config.layer_num_attention_heads]
    gate_neurons = [ones(n) for n in config.layer_intermediate_sizes]
    gate_dims, gate_layers = ones(config.hidden_size), ones(n_layers)
    act_heads = [zeros(n) for n in config.layer_num_attention_heads]
    act_neurons = [zeros(n) for n in config.layer_intermediate_sizes]
    act_dims, act_layers = zeros(config.hidden_size), zeros(n_layers)
    state: dict[str, torch.Tensor] = {}
    handles = []

    def valid(x: torch.Tensor) -> torch.Tensor:  # [B, T, ...] -> [N, ...] over non-padding tokens
        return x[state["mask"]]

    def dims_hook(_module, _inputs, output):
        if method == "activation":
            act_dims.add_(valid(output.detach()).abs().mean(0))
        return output * gate_dims

    def make_head_hook(index: int):
        def hook(module, inputs):
            (x,) = inputs
            heads = gate_heads[index].numel()
            if method == "activation":
                flat = valid(x.detach())
                weight = module.weight.detach()
                for h in range(heads):
                    part = (
                        flat[:, h * head_size : (h + 1) * head_size] @ weight[:, h * head_size : (h + 1) * head_size].T
                    )
                    act_heads[index][h] += part.norm(dim=-1).mean()
            gates = gate_heads[index].repeat_interleave(head_size)
            return (x * gates,)

        return hook

    def make_neuron_hook(index: int, out_weight: torch.Tensor):
        def hook(_module, _inputs, output):
            if method == "activation":
                act_neurons[index].add_(valid(output.detach()).abs().mean(0) * out_weight.detach().norm(dim=0))
            return output * gate_neurons[index]

        return hook

    def make_layer_hook(index: int):
        def hook(_module, inputs, output):
            hidden_in = inputs[0]
            hidden_out = output[0] if isinstance(output, tuple) else output
            if method == "activation":
                change = (hidden_out - hidden_in).detach().norm(dim=-1) / hidden_in.detach().norm(dim=-1).clamp_min(
                    1e-6
                )
                act_layers[index] += valid(change).mean()
            mixed = hidden_in + gate_layers[index] * (hidden_out - hidden_in)
            return (mixed, *output[1:]) if isinstance(output, tuple) else mixed

        return hook

    has_projection = hasattr(base, "embeddings_project")
    handles.append((base.embeddings_project if has_projection else base.embeddings).register_forward_hook(dims_hook))
    for index, layer in enumerate(layers):
        handles.append(layer.attention.output.dense.register_forward_pre_hook(make_head_hook(index)))
        handles.append(layer.attention.output.LayerNorm.register_forward_hook(dims_hook))
        handles.append(layer.intermediate.register_forward_hook(make_neuron_hook(index, layer.output.dense.weight)))
        handles.append(layer.output.LayerNorm.register_forward_hook(dims_hook))
        handles.append(layer.register_forward_hook(make_layer_hook(index)))

    generator = torch.Generator().manual_seed(seed)
    has_mlm = hasattr(model, "cls")
    was_training = model.training
    model.eval()
    n_batches = 0
    try:
        for batch in batches:
            batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            if method == "gradient":  # corrupted on the CPU (the seeded generator), whatever the model's device
                corrupted, chosen = _corrupt(batch["input_ids"].cpu(), mask_token_id, config.vocab_size, generator)
                corrupted, chosen = corrupted.to(device), chosen.to(device)
            batch = {k: v.to(device) for k, v in batch.items()}
            state["mask"] = _valid_mask(batch)
            n_batches += 1
            if method == "activation":
                with torch.no_grad():
                    model(**batch)
                continue
            chosen &= state["mask"]
            if has_mlm:
                labels = torch.where(chosen, batch["input_ids"], torch.full_like(chosen, -100, dtype=torch.long))
                loss = model(**{**batch, "input_ids": corrupted}, labels=labels).loss
            else:
                with torch.no_grad():
                    target = base(**batch).last_hidden_state
                output = base(**{**batch, "input_ids": corrupted}).last_hidden_state
                loss = ((output - target) ** 2)[state["mask"]].mean()
            loss.backward()
            for gate, acc in (
                *zip(gate_heads, act_heads, strict=True),
                *zip(gate_neurons, act_neurons, strict=True),
                (gate_dims, act_dims),
                (gate_layers, act_layers),
            ):
                if gate.grad is not None:
                    acc.add_(gate.grad.abs())
                gate.grad = None
            model.zero_grad(set_to_none=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("`batches` is empty: importance needs at least one calibration batch.")
    return Importance(
        layers=(act_layers / n_batches).cpu(),
        heads=[(h / n_batches).cpu() for h in act_heads],
        neurons=[(n / n_batches).cpu() for n in act_neurons],
        dims=(act_dims / n_batches).cpu(),
        method=method,
    )
