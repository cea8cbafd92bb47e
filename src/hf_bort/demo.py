"""The embedded default job: the packaged all-MiniLM-L6-v2 encoder converted to Bort, checked and described."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ._outputs import check_output_dir
from .assets import packaged_minilm_path
from .models.bort import BortConfig, BortModel, convert_to_bort, count_parameters, max_output_difference

SENTENCES = (
    "A gorgeous, witty, seductive movie.",
    "The plot is nothing but boilerplate clichés from start to finish.",
    "An utterly charming and hilarious film that reminded me of old Disney classics.",
    "It's a lot of sound and fury, signifying nothing.",
)


@dataclass
class DemoReport:
    source: str
    source_parameters: int
    bort_parameters: dict[str, int]
    max_abs_difference: float
    reloaded_max_abs_difference: float
    embedding_similarity: list[list[float]]
    presets: dict[str, int]
    seconds: float
    output_dir: str


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def run_demo(output_dir: str | Path = "bort-minilm") -> DemoReport:
    """Converts the packaged MiniLM to Bort in `output_dir`, reloads it, and reports sizes and output agreement."""
    from transformers import AutoModel, AutoTokenizer

    check_output_dir(output_dir, "output_dir")  # before the model is loaded
    start = time.perf_counter()
    source_path = packaged_minilm_path()
    source = AutoModel.from_pretrained(source_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(source_path)
    bort = convert_to_bort(source, output_dir, tokenizer=tokenizer)
    inputs = dict(tokenizer(list(SENTENCES), padding=True, return_tensors="pt"))
    difference = max_output_difference(source, bort, inputs)
    reloaded = AutoModel.from_pretrained(output_dir).eval()
    assert isinstance(reloaded, BortModel)
    reloaded_difference = max_output_difference(source, reloaded, inputs)
    with torch.no_grad():
        embeddings = _mean_pool(reloaded(**inputs).last_hidden_state, inputs["attention_mask"])
    similarity = (embeddings @ embeddings.T).round(decimals=3).tolist()
    return DemoReport(
        source=str(source_path),
        source_parameters=sum(p.numel() for p in source.parameters()),
        bort_parameters=count_parameters(bort.config).to_dict(),
        max_abs_difference=difference,
        reloaded_max_abs_difference=reloaded_difference,
        embedding_similarity=similarity,
        presets={name: count_parameters(BortConfig.from_preset(name)).total for name in ("bort", "bort-paper")},
        seconds=round(time.perf_counter() - start, 2),
        output_dir=str(Path(output_dir).resolve()),
    )


def format_report(report: DemoReport) -> str:
    lines = [
        f"Source: all-MiniLM-L6-v2 from {report.source}",
        f"  parameters (source BertModel):   {report.source_parameters:,}",
        f"  parameters (Bort, exact counter): {report.bort_parameters['total']:,} "
        f"(embeddings {report.bort_parameters['embeddings']:,}, encoder {report.bort_parameters['encoder']:,}, "
        f"pooler {report.bort_parameters['pooler']:,})",
        f"  max |Bort - source| on {len(SENTENCES)} sentences: {report.max_abs_difference:.2e} "
        f"(after save + AutoModel reload: {report.reloaded_max_abs_difference:.2e})",
        "  cosine similarity of mean-pooled sentence embeddings:",
    ]
    for sentence, row in zip(SENTENCES, report.embedding_similarity, strict=True):
        lines.append(f"    {' '.join(f'{v:5.2f}' for v in row)}  {sentence[:60]}")
    lines.append("Bort presets (BortModel with pooler): " + ", ".join(f"{k} {v:,}" for k, v in report.presets.items()))
    lines.append(f"Saved Bort checkpoint + tokenizer to {report.output_dir} in {report.seconds:.1f} s")
    return "\n".join(lines)


def report_json(report: DemoReport) -> str:
    return json.dumps(asdict(report), indent=2)
