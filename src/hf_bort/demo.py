"""
The embedded default job (`make demo`, `hf-bort demo`): the whole pipeline — compress, ONNX export, model card — on
the packaged all-MiniLM-L6-v2 and Rotten Tomatoes, with a reduced budget that fits in about ten minutes on a 2-core
CPU.

It is `compress` with the settings in `DEMO_SETTINGS` (fewer training rows and epochs, a smaller search space) and
nothing else: the same stages, checks, report and outputs as a full run, so what the demo prints is what a user gets,
only less trained. For the full recipe run `hf-bort compress` (README, "Compress a model for your task").

```python
>>> from hf_bort.demo import demo_config
>>> config = demo_config("runs/demo", model="tiny-bert", dataset="data/")  # any model and dataset, demo budget
>>> config.max_cost_ratio, config.finetune_epochs
(0.25, 2.0)
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The reduced budget (every other setting is CompressionConfig's default). The search space keeps all three kinds of
# cut (depth, heads, FFN width, hidden width) with fewer values of each; the search trains each candidate 8 steps,
# the survivors 16.
DEMO_SETTINGS: dict[str, Any] = {
    "max_cost_ratio": 0.25,
    "max_length": 64,
    "finetune_epochs": 2.0,
    "search_layers": "2,4,6",
    "search_heads": "3,6,12",
    "search_hidden": "288,384",
    "search_intermediate": "256,512,1536",
    "search_base_steps": 8,
    "epsilon": 0.5,
    "search_interval": 8,
    "search_eval_rows": 128,
    "distill_epochs": 1.0,
    "task_epochs": 2.0,
    "latency_runs": 30,
}
# Rows of the Rotten Tomatoes training split the demo uses (of 10,252); dev (500) and test (2,000) are whole.
DEMO_TRAIN_ROWS = 2000


def demo_config(output_dir: str | Path = "runs/demo", model: str | None = None, dataset: Any = None, **overrides):
    """
    The demo's `CompressionConfig`: the packaged all-MiniLM-L6-v2 and Rotten Tomatoes (seed 0 split, the first
    `DEMO_TRAIN_ROWS` training rows) unless `model` / `dataset` are given, with `DEMO_SETTINGS` and `overrides`.
    """
    from .compress import CompressionConfig

    if model is None:
        from .assets import packaged_minilm_path

        model = str(packaged_minilm_path())
    if dataset is None:
        from .assets import load_rotten_tomatoes

        dataset = load_rotten_tomatoes(seed=0)
        dataset["train"] = dataset["train"].select(range(DEMO_TRAIN_ROWS))
        name = f"Rotten Tomatoes polarity (hf_bort.assets, seed-0 split, {DEMO_TRAIN_ROWS:,} training rows)"
        overrides.setdefault("dataset_name", name)
    settings = {**DEMO_SETTINGS, **overrides}
    return CompressionConfig(model=str(model), dataset=dataset, output_dir=str(output_dir), **settings)


def run_demo(output_dir: str | Path = "runs/demo", **kwargs):
    """Runs `compress(demo_config(output_dir, **kwargs))` and returns its `CompressionResult` (resumable folder)."""
    from .compress import compress

    return compress(demo_config(output_dir, **kwargs))


def format_report(result) -> str:
    """The summary table and where everything is."""
    report = result.report
    out = Path(result.output_dir).resolve()
    lines = [result.summary(), ""]
    wall = report["wall_s"]
    minutes = sum(v for k, v in wall.items() if k != "this_call_s") / 60
    lines.append(f"Stages took {minutes:.1f} min in all (this call {wall['this_call_s'] / 60:.1f} min).")
    lines.append(f"Student (transformers, loads with from_pretrained): {out / 'student'}")
    onnx = out / "onnx" / "student"
    if onnx.is_dir():
        lines.append(f"Student in ONNX (fused, validated against PyTorch; ORTModel loads it): {onnx}")
    card = out / "student" / "README.md"
    if card.is_file():
        lines.append(f"Model card: {card}")
    lines.append(f"Everything measured: {out / 'compression_report.json'}")
    return "\n".join(lines)
