"""Convert the packaged all-MiniLM-L6-v2 encoder to Bort, reload it through the Auto classes, and compare outputs.

Run: .venv/bin/python examples/convert_minilm_to_bort.py [OUTPUT_DIR]
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModel, AutoTokenizer

import hf_bort
from hf_bort.assets import packaged_minilm_path


def main(output_dir: str = "runs/minilm-bort") -> None:
    source_path = packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(source_path)
    source = AutoModel.from_pretrained(source_path).eval()

    hf_bort.convert_to_bort(source, output_dir, tokenizer=tokenizer, overwrite=True)  # a rerun replaces it
    bort = AutoModel.from_pretrained(output_dir).eval()  # a BortModel, through the registered Auto classes
    print(type(bort).__name__, f"{hf_bort.count_parameters(bort.config).total:,} parameters")

    inputs = tokenizer(
        ["Bort is BERT, extracted.", "A second, longer sentence to pad against."], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        difference = (bort(**inputs).last_hidden_state - source(**inputs).last_hidden_state).abs().max().item()
    print(f"max |Bort - MiniLM| = {difference:.2e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/minilm-bort", help="Where the Bort checkpoint goes.")
    main(parser.parse_args().output_dir)
