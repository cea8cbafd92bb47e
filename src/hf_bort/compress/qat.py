"""
Quantization-aware training (QAT) for ONNX Runtime's *full dynamic* int8 (issue 23, "students that survive full int8").

[`simulate_dynamic_int8`] makes every `nn.Linear` of a PyTorch model compute what ONNX Runtime's dynamic
quantization (`hf-bort export --int8 dynamic-int8`, `exporters/int8_variants.quantize_dynamic` with the defaults of
`Int8Config`) computes for it. Checked on an exported Bort classifier: every `MatMul` (FFN, attention output), the
fused `Attention`'s QKV projection (`QAttention`) and the pooler and classifier `Gemm`s become integer products, so
every `nn.Linear` of the model is simulated:

- weights: symmetric, one scale per output channel (`per_channel=True`, the exporter's default), int8 in
  [-127, 127] with scale `absmax / 127` (optimum's avx512 / avx512_vnni / arm64 presets) or, for the `avx2` preset,
  uint8 with zero point 128 and scale `2·absmax / 255`; `reduce_range` halves the range ([-64, 64], [0, 127]) as
  ONNX Runtime does;
- inputs: `DynamicQuantizeLinear` at run time, uint8 asymmetric, one scale and zero point per input tensor from the
  tensor's min / max (extended to include 0), so the whole batch — padded positions included — sets the scale.

The integer product is exact in ONNX Runtime (int32 accumulation), so `fake(x) @ fake(W)ᵀ + b` in fp32 matches it up
to float rounding. Gradients pass straight through the rounding (`torch.fake_quantize_*`; nothing is clipped, the
ranges come from the tensors' own extremes). The simulation replaces the `forward` of each `nn.Linear` *instance*
(the parameters, their names and the state dict are untouched, so the Trainer's checkpoints are plain); `remove()`
deletes those instance attributes and leaves the original modules, which `save_pretrained` / `from_pretrained` as
before.

[`quantization_aware_distillation`] runs `steps` optimizer steps of the `task` stage's distillation
(`recipe.finetune` with the teacher: CE + T²·KL) with the simulation on, evaluates the simulated-int8 student on dev
before training and at `checks` evenly spaced steps and keeps the best check — or the starting weights, when no check
beats them on the simulated-int8 dev metric (recorded as `kept: "before"`). Simulated (like real) dynamic int8 takes
one activation scale per batch tensor, so a dev score depends on how dev is batched: the start and the checks are all
scored in the Trainer's dev batches. The weights kept are plain fp32.

`target` picks the soft target of the KL term (the CE on gold keeps `alpha_ce`):

- `"teacher"`: the task stage's teacher; checks are judged on the simulated-int8 dev `best_metric`.
- `"self"`: the student's own fp32 logits — from a frozen copy of the student as it entered the stage, in eval mode
  (no dropout), passed to the DistillationTrainer as its teacher. A frozen copy and not the training student with the
  simulation switched off: the DistillationTrainer puts its teacher in eval mode and freezes its parameters, which
  would freeze the student itself, and a moving target could drift with the int8 errors it is meant to remove. The
  stage stays close to the starting weights, so the starting fp32 labels are also (nearly) the kept weights' own.
  Checks are judged on what agreement compares: simulated-int8 label agreement with the same weights' fp32 on dev,
  ties broken by simulated-int8 dev accuracy (`agreement_then_accuracy`, compress/qat_agreement.py).

Either way every check also records `int8_fp32_agreement`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

logger = logging.getLogger(__name__)

WEIGHT_TYPES = ("int8", "uint8")
QAT_TARGETS = ("teacher", "self")
# (weight type, reduce_range) -> ONNX Runtime's symmetric weight range (quant_utils.get_qmin_qmax_for_qType)
_WEIGHT_RANGES = {
    ("int8", False): (-127, 127),
    ("int8", True): (-64, 64),
    ("uint8", False): (0, 255),
    ("uint8", True): (0, 127),
}


@dataclass(frozen=True)
class DynamicInt8Simulation:
    """How the weights are quantized (activations: always uint8 asymmetric per tensor, as `DynamicQuantizeLinear`)."""

    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False

    def __post_init__(self) -> None:
        if self.weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type must be one of {WEIGHT_TYPES}; got {self.weight_type!r}.")
        for name in ("per_channel", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")

    @classmethod
    def for_target(cls, target: str, per_channel: bool = True, reduce_range: bool = False) -> DynamicInt8Simulation:
        """The weights optimum's dynamic preset for `target` writes (`avx2`: uint8; avx512*, arm64: int8)."""
        from ..exporters.int8_config import QUANTIZATION_TARGETS

        if target not in QUANTIZATION_TARGETS:
            raise ValueError(f"target must be one of {', '.join(QUANTIZATION_TARGETS)}; got {target!r}.")
        return cls("uint8" if target == "avx2" else "int8", per_channel, reduce_range)

    def to_dict(self) -> dict[str, Any]:
        low, high = _WEIGHT_RANGES[(self.weight_type, self.reduce_range)]
        return {
            **asdict(self),
            "weight_range": [low, high],
            "weights": "symmetric, " + ("per output channel" if self.per_channel else "per tensor"),
            "activations": "uint8 asymmetric, one scale and zero point per input tensor (its min/max with 0)",
            "simulated": "every nn.Linear (ONNX Runtime dynamic int8 quantizes every MatMul, Attention and Gemm)",
        }


def fake_quantize_weight(weight: torch.Tensor, simulation: DynamicInt8Simulation) -> torch.Tensor:
    """`weight` ([out, in], an `nn.Linear`'s) quantized and dequantized as ONNX Runtime's symmetric weights."""
    low, high = _WEIGHT_RANGES[(simulation.weight_type, simulation.reduce_range)]
    with torch.no_grad():
        absmax = weight.detach().abs().amax(dim=1) if simulation.per_channel else weight.detach().abs().amax()
        scale = (2 * absmax / (high - low)).float()
        empty = scale < torch.finfo(torch.float32).tiny
        scale = torch.where(empty, torch.ones_like(scale), scale)
        middle = round((low + high) / 2) if low == 0 else 0  # uint8: 128 (64 reduced); int8: 0
        zero = torch.full_like(scale, middle, dtype=torch.int32)
        zero = torch.where(empty, torch.zeros_like(zero), zero)
    if simulation.per_channel:
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, low, high)
    return torch.fake_quantize_per_tensor_affine(weight, scale.reshape(1), zero.reshape(1), low, high)


def fake_quantize_activation(value: torch.Tensor) -> torch.Tensor:
    """`value` through `DynamicQuantizeLinear` and back: uint8, scale and zero point from the whole tensor."""
    with torch.no_grad():
        low = torch.clamp(value.detach().min(), max=0.0).float()
        high = torch.clamp(value.detach().max(), min=0.0).float()
        scale = (high - low) / 255
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(torch.round(-low / scale), 0, 255).to(torch.int32)
    return torch.fake_quantize_per_tensor_affine(value, scale.reshape(1), zero.reshape(1), 0, 255)


def _simulated_forward(module: nn.Linear, simulation: DynamicInt8Simulation, input: torch.Tensor) -> torch.Tensor:
    return F.linear(fake_quantize_activation(input), fake_quantize_weight(module.weight, simulation), module.bias)


class SimulatedInt8:
    """The `nn.Linear` modules of a model computing simulated dynamic int8; `remove()` (or leaving the `with` block)
    gives them back their own forward."""

    def __init__(self, modules: dict[str, nn.Linear], simulation: DynamicInt8Simulation):
        self.modules = modules
        self.simulation = simulation

    def remove(self) -> None:
        for module in self.modules.values():
            module.__dict__.pop("forward", None)
        self.modules = {}

    def __enter__(self) -> SimulatedInt8:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def simulate_dynamic_int8(model: nn.Module, simulation: DynamicInt8Simulation | None = None) -> SimulatedInt8:
    """
    Every `nn.Linear` of `model` computes ONNX Runtime's dynamic int8 product (see the module docstring) until the
    returned handle's `remove()`. Raises a ValueError when the model has no `nn.Linear` or is already simulated.
    """
    simulation = simulation or DynamicInt8Simulation()
    linears = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: nothing for int8 to quantize.")
    taken = [name for name, module in linears.items() if "forward" in module.__dict__]
    if taken:
        raise ValueError(f"These nn.Linear layers already have their own forward (simulated twice?): {taken[:5]}")
    for module in linears.values():
        module.forward = partial(_simulated_forward, module, simulation)
    return SimulatedInt8(linears, simulation)


def keep_task_student(out: Path) -> Path:
    """
    `out/student-task`: the student the `qat` stage starts from — the one in `out/student` after the `task` and
    `augment` stages (the task student, or the augmented one when the augmentation gate kept it) — copied once
    (atomically: a copy cut short is never taken for it), so that a resumed `qat` stage starts from the same weights.
    """
    import os
    import shutil

    kept, student = Path(out) / "student-task", Path(out) / "student"
    if not kept.is_dir():
        temporary = kept.with_name(kept.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(student, temporary)
        os.replace(temporary, kept)
    return kept


def replace_student(student: nn.Module, out: Path, tokenizer, temporary: str = "student-qat.tmp") -> Path:
    """
    Saves `student` (plain, no card: compress writes it from the report) as `out/student`, replacing it (written
    first to `out/<temporary>`; the `qat` and `augment` stages each have their own).
    """
    import os
    import shutil

    from ..ose.extract import save_extracted

    target = Path(out) / "student"
    folder = target.with_name(temporary)
    shutil.rmtree(folder, ignore_errors=True)
    save_extracted(student, folder, tokenizer, card=False)
    shutil.rmtree(target, ignore_errors=True)  # `out/student-task` or `out/augment/task-student` keeps the one before
    os.replace(folder, target)
    return target


def quantization_aware_distillation(
    student: nn.Module,
    teacher: nn.Module,
    train_rows,
    dev_rows,
    tokenizer,
    *,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    work_dir: str | Path,
    checks: int = 4,
    alpha_ce: float = 0.5,
    alpha_kd: float = 0.5,
    temperature: float = 2.0,
    best_metric: str = "macro_f1",
    simulation: DynamicInt8Simulation | None = None,
    show_progress: bool = True,
    target: str = "teacher",
) -> dict[str, Any]:
    """
    `steps` steps of task distillation of `student` from `teacher` (tokenised `train_rows`, labels -100 for KL-only
    rows) with simulated dynamic int8 on; the simulated-int8 student is evaluated on tokenised `dev_rows` before and
    at `checks` evenly spaced steps, and the best check by `best_metric` is kept (the starting weights when no check
    beats them). `student` is left plain (no simulation) holding the kept weights. Returns the stage's record.
    `target="self"` distils towards the student's own starting fp32 logits and keeps the check with the best
    simulated-int8 agreement with fp32 (then accuracy) instead (module docstring).
    """
    import copy

    from . import recipe
    from .qat_agreement import AGREEMENT_THEN_ACCURACY, Int8Fp32Agreement

    if target not in QAT_TARGETS:
        raise ValueError(f"target must be one of {QAT_TARGETS}; got {target!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}.")
    if isinstance(checks, bool) or not isinstance(checks, int) or checks < 1:
        raise ValueError(f"checks must be an integer >= 1; got {checks!r}.")
    simulation = simulation or DynamicInt8Simulation()
    fp32_before = recipe.evaluate(student, dev_rows, tokenizer)
    start = {name: value.detach().clone() for name, value in student.state_dict().items()}
    scores = Int8Fp32Agreement(student, dev_rows, tokenizer)  # before the simulation: it keeps a plain copy
    if target == "self":
        teacher = copy.deepcopy(student).eval()  # the frozen starting student (fp32)
        best_metric = AGREEMENT_THEN_ACCURACY
    with simulate_dynamic_int8(student, simulation):
        training = recipe.finetune(
            student,
            train_rows,
            tokenizer,
            epochs=1.0,  # max_steps decides
            max_steps=steps,
            eval_steps=math.ceil(steps / checks),
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            work_dir=Path(work_dir),
            show_progress=show_progress,
            teacher=teacher,
            alpha_ce=alpha_ce,
            alpha_kd=alpha_kd,
            temperature=temperature,
            eval_dataset=dev_rows,
            best_metric=best_metric,
            eval_on_start=True,  # the starting weights, scored in the checks' own dev batches
            compute_metrics=scores,
        )
    del scores
    # Simulated int8 takes one activation scale per batch tensor, so its dev scores depend on how dev is batched:
    # the start and the checks are compared in the same (the Trainer's) batches.
    int8_before, int8_after = training["dev_at_start"], training["best_dev"]
    if int8_after[best_metric] > int8_before[best_metric]:
        kept = "qat"
        why = f"the best check's simulated-int8 dev {best_metric} beats the starting weights'"
    else:
        kept = "before"
        why = f"no check beat the starting weights' simulated-int8 dev {best_metric}: the student is unchanged"
        student.load_state_dict(start)
        int8_after = int8_before
        logger.warning("Quantization-aware training: %s.", why)
    student.eval()
    return {
        "steps": steps,
        "learning_rate": learning_rate,
        "checks": checks,
        "target": target,
        "criterion": best_metric,
        "simulation": simulation.to_dict(),
        "training": training,
        "kept": kept,
        "why": why,
        "dev_fp32_before": fp32_before,
        "dev_simulated_int8_before": int8_before,
        "dev_simulated_int8": int8_after,
        "dev_simulated_int8_batches": "the Trainer's dev batches (per_device_eval_batch_size 128, length-grouped)",
        "dev": recipe.evaluate(student, dev_rows, tokenizer),  # fp32, the weights kept
    }
