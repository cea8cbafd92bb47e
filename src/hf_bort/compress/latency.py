"""
The latency step of `compress`: each model's forward pass timed in PyTorch eager and ONNX Runtime fp32, in
interleaved rounds on the CPU, and the machine the timings were taken on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import measure


def time_interleaved(
    runners: dict[str, Any], runs: int, rounds: int = 5, warmup: int = 5
) -> dict[str, dict[str, float]]:
    """Interleaved rounds (A runs/rounds times, then B, …) so drift on a shared CPU hits every model alike."""
    times = measure.time_interleaved(runners, runs, rounds=rounds, warmup=warmup)
    return {name: measure.latency_summary(values, median=True) for name, values in times.items()}


def measure_latency(
    models: dict[str, nn.Module],
    tokenizer,
    *,
    sequence_length: int,
    batch_size: int = 1,
    runs: int = 100,
    onnx_dir: Path | None = None,
    seed: int = 0,
    task: str = "text-classification",
    validation_texts: list[Any] | None = None,
) -> dict[str, Any]:
    """
    p50/p90 latency of each model's forward pass in PyTorch eager and, with `onnx_dir`, ONNX Runtime fp32 (exported
    and validated with `hf_bort.exporters.export_onnx`), at `batch_size` × `sequence_length`, the models timed in
    interleaved rounds; `ratio_to_<first model>` is measured in the same run. `task` is the ONNX export task
    (`"feature-extraction"` for bare encoders). `validation_texts` are the export's validation inputs (default:
    the exporter's sentences); given as (text, text_pair) pairs, the timed inputs are pairs too (the second half
    of the tokens is token type 1 where the model has token types).

    Timed on the CPU on purpose, wherever the stages before trained the models (they are moved to the CPU here):
    the latency budgets and the reported ratios describe CPU inference, the deployment target.
    """
    models = {name: model.to("cpu") for name, model in models.items()}
    first = next(iter(models))
    out: dict[str, Any] = {
        "batch_size": batch_size,
        "sequence_length": sequence_length,
        "threads": torch.get_num_threads(),
    }
    inputs = {
        name: measure.random_inputs(
            m.config, batch_size, sequence_length, seed, low=min(1000, m.config.vocab_size - 1)
        )
        for name, m in models.items()
    }
    if validation_texts and isinstance(validation_texts[0], (list, tuple)):
        for name, m in models.items():  # a pair: the second half is the second text
            if getattr(m.config, "type_vocab_size", 0) > 1 and "token_type_ids" in inputs[name]:
                inputs[name]["token_type_ids"][:, sequence_length // 2 :] = 1
        out["inputs"] = "text pairs"

    def torch_runner(model, feed):
        def run():
            with torch.inference_mode():
                model(**feed)

        return run

    pytorch, onnx_fp32 = measure.REPORT_ENGINE_KEYS["pytorch"], measure.REPORT_ENGINE_KEYS["ort-fp32"]
    out[pytorch] = time_interleaved({n: torch_runner(m.eval(), inputs[n]) for n, m in models.items()}, runs)
    if onnx_dir is not None:
        from ..exporters import export_onnx

        runners, differences, fused = {}, {}, {}
        for name, model in models.items():
            result = export_onnx(
                model,
                onnx_dir / name,
                task=task,
                tokenizer=tokenizer,
                overwrite=True,
                validation_texts=validation_texts,
            )
            session = measure.ort_session(result.onnx_path, torch.get_num_threads())
            feed = measure.session_feed(session, inputs[name])
            runners[name] = (lambda s, f: lambda: s.run(None, f))(session, feed)
            differences[name] = result.max_abs_diff
            fused[name] = dict(result.fused_operators or {})
        out[onnx_fp32] = time_interleaved(runners, runs)
        out["onnx_max_abs_diff_vs_pytorch"] = differences
        out["onnx_fused_operators"] = fused
    for engine in (pytorch, onnx_fp32):
        if engine in out:
            for entry in out[engine].values():
                entry[f"ratio_to_{first}"] = entry["p50_ms"] / out[engine][first]["p50_ms"]
    return out


machine_info = measure.machine_info  # the CPU, cores, threads and versions (report key `machine`)
