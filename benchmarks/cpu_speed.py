"""CPU speed of BERT-base, BERT-large, both Bort presets, all-MiniLM-L6-v2 and a smaller Bort sliced from it.

PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime dynamic int8 (all exported by `hf_bort.exporters.export_onnx`),
threads pinned, one engine at a time. BERT and the Bort presets have random weights (speed does not depend on them);
MiniLM is the real packaged encoder, validated on Rotten Tomatoes validation sentences.

The "extracted" model is NOT the output of the OSE search (written in parallel): it is MiniLM converted to Bort and
sliced by hand, keeping layers 0, 2 and 5, the first 8/8/6 of 12 heads and the first 1024/768/768 of 1536 FFN
neurons (per-layer shapes). Its weights are therefore partial MiniLM weights, fine for speed; int8 agreement is
measured on its own outputs.

Run (about 10 minutes on 2 cores):

    flock /tmp/hf_bort_cpu.lock python benchmarks/cpu_speed.py

Writes benchmarks/results/cpu_speed.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from hf_bort import BortConfig, BortModel, convert_to_bort  # noqa: E402
from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path  # noqa: E402
from hf_bort.exporters.bench import BenchConfig, multiply_adds, run_benchmark  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KEEP_LAYERS = (0, 2, 5)
KEEP_HEADS = (8, 8, 6)
KEEP_FFN = (1024, 768, 768)


def slice_bort(bort: BortModel, layers, heads, ffn) -> BortModel:
    """Keep `layers` of `bort`, the first `heads[i]` heads and first `ffn[i]` FFN neurons of each (plain slicing)."""
    config = bort.config.to_dict()
    for key in ("architectures", "auto_map", "transformers_version", "model_type"):
        config.pop(key, None)
    head_size = bort.config.attention_head_size or bort.config.hidden_size // bort.config.layer_num_attention_heads[0]
    config.update(
        num_hidden_layers=len(layers),
        num_attention_heads=list(heads),
        intermediate_size=list(ffn),
        attention_head_size=head_size,
    )
    small = BortModel(BortConfig(**config))
    source = bort.state_dict()
    state = {}
    for key in small.state_dict():
        if not key.startswith("encoder.layer."):
            state[key] = source[key]
            continue
        _, _, index, rest = key.split(".", 3)
        new = int(index)
        value = source[f"encoder.layer.{layers[new]}.{rest}"]
        inner, width = heads[new] * head_size, ffn[new]
        if rest.startswith("attention.self."):  # query/key/value: output rows per head
            value = value[:inner]
        elif rest == "attention.output.dense.weight":
            value = value[:, :inner]
        elif rest.startswith("intermediate.dense."):
            value = value[:width]
        elif rest == "output.dense.weight":
            value = value[:, :width]
        state[key] = value.clone()
    small.load_state_dict(state, strict=True)
    return small.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--texts", type=int, default=64, help="Rotten Tomatoes validation sentences for validation.")
    parser.add_argument("--models", nargs="+", default=None, help="Subset of the models (default: all).")
    parser.add_argument("--name", default="cpu_speed")
    args = parser.parse_args()

    torch.manual_seed(0)
    minilm_path = packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    minilm = AutoModel.from_pretrained(minilm_path).eval()
    minilm_bort = convert_to_bort(minilm)
    sliced = slice_bort(minilm_bort, KEEP_LAYERS, KEEP_HEADS, KEEP_FFN)
    models = {
        "bert-base": "bert-base",
        "bert-large": "bert-large",
        "bort": "bort",
        "bort-paper": "bort-paper",
        "minilm": minilm,
        "minilm-bort-sliced": sliced,
    }
    if args.models:
        models = {name: spec for name, spec in models.items() if name in args.models}
    tokenizers = {"minilm": tokenizer, "minilm-bort-sliced": tokenizer}
    texts = load_rotten_tomatoes()["validation"]["text"][: args.texts]
    comparisons = [
        (a, b)
        for a, b in [
            ("bort", "bert-base"),
            ("bort", "bert-large"),
            ("bort-paper", "bert-base"),
            ("bort-paper", "bert-large"),
            ("minilm-bort-sliced", "minilm"),
        ]
        if a in models and b in models
    ]
    config = BenchConfig(
        batch_sizes=args.batch_sizes,
        seq_lengths=args.seq_lengths,
        threads=args.threads,
        warmup=2,
        iterations=args.iterations,
        max_seconds=args.max_seconds,
    )
    started = time.perf_counter()
    result = run_benchmark(models, config, comparisons=comparisons, tokenizers=tokenizers, validation_texts=texts)
    data = result.to_dict()
    data["wall_seconds"] = time.perf_counter() - started
    data["extracted_model"] = {
        "how": "convert_to_bort(all-MiniLM-L6-v2), then plain slicing (not the OSE search)",
        "layers_kept": list(KEEP_LAYERS),
        "heads_per_layer": list(KEEP_HEADS),
        "ffn_per_layer": list(KEEP_FFN),
        "analytic_ratio_b1_L128": multiply_adds(minilm.config, 1, 128) / multiply_adds(sliced.config, 1, 128),
    }
    data["targets"] = _targets(data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = result.save(RESULTS, name=args.name)
    Path(paths["json"]).write_text(json.dumps(data, indent=2) + "\n")  # with the extra fields
    print(result.to_markdown())
    print(json.dumps(data["targets"], indent=2))
    print(json.dumps(paths))


def _targets(data: dict) -> dict:
    """The issue's targets, evaluated on this run's numbers (each cell listed; `met` only if all cells meet it)."""
    extracted = [
        c
        for c in data["comparisons"]
        if c["model"] == "minilm-bort-sliced" and c["reference"] == "minilm" and c["engine"] == "ort-fp32"
    ]
    fp32 = [(r["model"], r["batch_size"], r["seq_len"], r.get("ort_fp32_over_pytorch")) for r in data["engine_ratios"]]
    int8 = [(r["model"], r["batch_size"], r["seq_len"], r.get("int8_over_fp32")) for r in data["engine_ratios"]]
    agreement = {name: info.get("argmax_agreement") for name, info in data["models"].items()}
    return {
        "extracted_ort_speedup_ge_90pct_of_analytic": {
            "cells": [(c["batch_size"], c["seq_len"], round(c["fraction_of_analytic"], 3)) for c in extracted],
            "met": bool(extracted) and all(c["fraction_of_analytic"] >= 0.9 for c in extracted),
        },
        "ort_fp32_ge_2x_pytorch": {
            "cells": [(m, b, s, round(v, 3)) for m, b, s, v in fp32 if v is not None],
            "met": all(v is not None and v >= 2 for *_, v in fp32),
        },
        "int8_ge_1.3x_fp32": {
            "cells": [(m, b, s, round(v, 3)) for m, b, s, v in int8 if v is not None],
            "met": all(v is not None and v >= 1.3 for *_, v in int8),
        },
        "int8_argmax_agreement_ge_99pct": {
            "per_model": agreement,
            "met": all(v is not None and v >= 0.99 for v in agreement.values()),
        },
    }


if __name__ == "__main__":
    main()
