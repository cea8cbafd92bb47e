"""
Largest output difference between each converted family and its Bort conversion, for README's "Converting" section.

For every family (DistilBERT with learned and with sinusoidal positions, MPNet, DeBERTa-v3 and DeBERTa-v2 layouts,
ModernBERT on its eager and SDPA paths and with every bias and mean pooling) and every head transformers offers
(base model, MLM, sequence / token classification, QA, multiple choice): a tiny random source (2 layers, width 32,
4 heads, FFN 37, initializer range 0.2, MPNet's relative bias drawn from N(0, 1)) built exactly as in
`tests/tiny_families.py`, converted with `convert_to_bort`, and compared in fp32 on a batch of two sequences, the
second padded (9 tokens; 200 tokens for the base models of MPNet and DeBERTa, through their logarithmic buckets, and
of ModernBERT, across its local windows). The difference is the maximum over every layer's hidden states
(non-padding tokens) and every output tensor (for ModernBERT, per-token outputs at non-padding tokens only: a padded
query whose whole local window is padding has no defined output, and transformers 4.x returns the last layer's
states before the final norm, so that entry is left to `last_hidden_state`).
With `--base-size`, the base models are also built at the published shapes (distilbert-base-uncased: 6 × 768,
12 heads, FFN 3072; all-mpnet-base-v2 / mpnet-base: 12 × 768; deberta-v3-base: 12 × 768, 256 buckets) with random
weights and compared on 2 × 128 tokens (ModernBERT-base: 22 × 768, 12 heads, GeGLU 1152, window 128, on 2 × 300).
`--families` limits the run to some families and merges them into an existing report.

    PYTHONPATH=src python benchmarks/convert_families.py --base-size
    PYTHONPATH=src python benchmarks/convert_families.py --base-size --families modernbert modernbert-sdpa
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hf_bort import convert_to_bort  # noqa: E402
from tiny_families import FAMILIES, HEADS, make_source, padded_batch  # noqa: E402

BASE_SIZE = {
    "distilbert": lambda: transformers.DistilBertConfig(vocab_size=30522),
    "distilbert-sinusoidal": lambda: transformers.DistilBertConfig(vocab_size=30522, sinusoidal_pos_embds=True),
    "mpnet": lambda: transformers.MPNetConfig(vocab_size=30527, max_position_embeddings=514),
    "deberta-v3": lambda: transformers.DebertaV2Config(  # microsoft/deberta-v3-base's config
        vocab_size=128100,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        layer_norm_eps=1e-7,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        position_buckets=256,
        max_relative_positions=-1,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        type_vocab_size=0,
    ),
    "modernbert": lambda: _eager(transformers.ModernBertConfig()),  # answerdotai/ModernBERT-base's shape
}


def _eager(config):
    config._attn_implementation = "eager"
    return config


@torch.no_grad()
def max_difference(source, bort, inputs) -> float:
    expected = source(**inputs, output_hidden_states=True)
    actual = bort(**inputs, output_hidden_states=True)
    mask = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1]).bool()
    modern = source.config.model_type == "modernbert"
    pairs = list(zip(actual.hidden_states, expected.hidden_states, strict=True))
    if modern and transformers.__version__.startswith("4."):
        pairs = pairs[:-1]  # before the final norm in 4.x; `last_hidden_state` is compared below
    worst = max((a[mask] - e[mask]).abs().max().item() for a, e in pairs)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and key != "loss":
            difference = actual[key] - value
            if modern and difference.shape[:2] == mask.shape:
                difference = difference[mask]
            worst = max(worst, difference.abs().max().item())
    return worst


def _inputs(head: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if head == "ForMultipleChoice":
        return {key: value.unsqueeze(1).expand(-1, 3, -1).contiguous() for key, value in batch.items()}
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "convert_families.json"))
    parser.add_argument("--base-size", action="store_true", help="also compare the base models at published shapes")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), help="only these (merged into --output)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    previous = {}
    if args.families and Path(args.output).exists():
        previous = json.loads(Path(args.output).read_text())
    results: dict[str, dict[str, float]] = dict(previous.get("tiny_max_abs_difference", {}))
    for family in args.families or FAMILIES:
        results[family] = {}
        for head in HEADS:
            source = make_source(family, head)
            bort = convert_to_bort(source).eval()
            long_input = family in ("mpnet", "deberta-v3") or family.startswith("modernbert")
            length = 200 if long_input and head == "Model" else 9
            results[family][head] = max_difference(source, bort, _inputs(head, padded_batch(length)))
            print(f"{family:22s} {head:26s} {results[family][head]:.2e}", flush=True)
    base_size: dict[str, float] = dict(previous.get("base_size_max_abs_difference", {}))
    if args.base_size:
        generator = torch.Generator().manual_seed(0)
        for family, make_config in BASE_SIZE.items():
            if args.families and family not in args.families:
                continue
            torch.manual_seed(0)
            source = getattr(transformers, FAMILIES[family][0] + "Model")(make_config()).eval()
            bort = convert_to_bort(source).eval()
            length = 300 if family == "modernbert" else 128
            input_ids = torch.randint(3, 30000, (2, length), generator=generator)
            attention_mask = torch.ones_like(input_ids)
            input_ids[1, length * 5 // 8 :], attention_mask[1, length * 5 // 8 :] = 1, 0
            base_size[family] = max_difference(
                source, bort, {"input_ids": input_ids, "attention_mask": attention_mask}
            )
            print(f"{family:22s} base size                  {base_size[family]:.2e}", flush=True)
            del source, bort
    worst = max(value for heads in results.values() for value in heads.values())
    report = {
        "command": "PYTHONPATH=src python benchmarks/convert_families.py"
        + (" --base-size" if args.base_size else "")
        + (" --families " + " ".join(args.families) if args.families else ""),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tiny_max_abs_difference": results,
        "tiny_worst": worst,
        "base_size_max_abs_difference": base_size,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(f"worst tiny difference {worst:.2e}; wrote {args.output}")


if __name__ == "__main__":
    main()
