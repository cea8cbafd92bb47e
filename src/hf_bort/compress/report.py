"""
What a compress run reports: the entries of `compression_report.json` both tasks share (the search record, the
student's shape, size and cost), [`publish`] (the report, the model card and the push), and [`CompressionResult`],
what `compress` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import CompressionConfig
from .run import REPORT_NAME, json_default

if TYPE_CHECKING:
    from ..ose.space import Candidate

# Student vs teacher embeddings (task="feature-extraction", hf_bort.compress.embedding).
AGREEMENT_METRICS = ("mean_cosine", "nearest_neighbour_agreement", "spearman_pairwise")


@dataclass
class CompressionResult:
    """What [`compress`] returns: the report (also in `compression_report.json`) and where the student is."""

    report: dict[str, Any]
    output_dir: Path

    @property
    def student_path(self) -> Path:
        return self.output_dir / "student"

    def load_student(self):
        """The student as a `BortForSequenceClassification` (`SentenceTransformer` for task="feature-extraction")."""
        from transformers import AutoModelForSequenceClassification

        if self.report.get("task") == "feature-extraction":
            from ..ose.embedding import load_sentence_transformer

            return load_sentence_transformer(self.student_path)

        return AutoModelForSequenceClassification.from_pretrained(self.student_path)

    def summary(self) -> str:
        """Source vs student: dev/test metrics, parameters, multiply-adds and latency, as a text table."""
        report = self.report
        rows = [("", "source", "student")]
        source, student = report["source"], report["student"]
        for split in ("dev", "test"):
            for metric in ("accuracy", "macro_f1", *AGREEMENT_METRICS):
                a = (source.get(split) or {}).get(metric)  # `test` is None when there is no test split
                b = (student.get(split) or {}).get(metric)
                if a is not None or b is not None:
                    scale, suffix = (100, "%") if metric in ("accuracy", "macro_f1") else (1, "")
                    rows.append((f"{split} {metric}", _fmt(a, scale, suffix), _fmt(b, scale, suffix)))
        rows.append(("parameters", f"{source['parameters']:,}", f"{student['parameters']:,}"))
        rows.append(
            (
                "encoder multiply-adds",
                f"{source['encoder_multiply_adds']:,}",
                f"{student['encoder_multiply_adds']:,} (×{student['multiply_adds_ratio']:.3f})",
            )
        )
        latency = report.get("latency") or {}
        for engine in ("pytorch", "onnxruntime_fp32"):
            if engine in latency:
                cell = latency[engine]
                rows.append(
                    (
                        f"latency {engine} b{latency['batch_size']} L{latency['sequence_length']}",
                        f"{cell['source']['p50_ms']:.2f} ms",
                        f"{cell['student']['p50_ms']:.2f} ms (×{cell['student']['ratio_to_source']:.2f})",
                    )
                )
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{report['student']['shape']} from {report['settings']['model']}"]
        lines += ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows]
        lines += [f"WARNING: {warning}" for warning in report.get("warnings") or []]
        lines += speed_lines(report.get("speed") or {})
        return "\n".join(lines)


ENGINE_LABELS = {"pytorch": "PyTorch", "onnxruntime_fp32": "ONNX Runtime fp32"}


def speed_record(latency: dict[str, Any], source_multiply_adds: int, student_multiply_adds: int) -> dict[str, Any]:
    """
    The student's measured speed-up over the source beside the analytic one, at the shape the `latency` stage timed
    (`*_multiply_adds` are counted at its sequence length): `analytic_speedup` = source / student multiply-adds;
    per engine, `measured_speedup` = source / student p50 latency, `latency_ratio` its inverse, and
    `fraction_of_analytic` = measured / analytic (1.0: the student is as much faster as its multiply-adds promise).
    Empty when no latency was measured.
    """
    if not latency or "skipped" in latency:
        return {}
    analytic = source_multiply_adds / student_multiply_adds
    out: dict[str, Any] = {
        "batch_size": latency.get("batch_size"),
        "sequence_length": latency.get("sequence_length"),
        "threads": latency.get("threads"),
        "analytic_multiply_adds_ratio": student_multiply_adds / source_multiply_adds,
        "analytic_speedup": analytic,
    }
    for engine in ENGINE_LABELS:
        cell = latency.get(engine)
        if cell and "source" in cell and "student" in cell:
            measured = cell["source"]["p50_ms"] / cell["student"]["p50_ms"]
            out[engine] = {
                "latency_ratio": 1 / measured,
                "measured_speedup": measured,
                "fraction_of_analytic": measured / analytic,
            }
    return out


def speed_lines(speed: dict[str, Any]) -> list[str]:
    """One line per engine: measured student/source latency ratio beside the analytic multiply-add ratio."""
    lines = []
    for engine, label in ENGINE_LABELS.items():
        if engine in speed:
            cell = speed[engine]
            lines.append(
                f"{label} b{speed['batch_size']} L{speed['sequence_length']}: measured latency ratio "
                f"×{cell['latency_ratio']:.3f} (speed-up {cell['measured_speedup']:.2f}×) vs analytic multiply-add "
                f"ratio ×{speed['analytic_multiply_adds_ratio']:.3f} ({speed['analytic_speedup']:.2f}×): "
                f"{100 * cell['fraction_of_analytic']:.0f} % of the analytic speed-up"
            )
    return lines


def _fmt(value: float | None, scale: float = 1.0, suffix: str = "") -> str:
    return "–" if value is None else f"{value * scale:.2f}{suffix}"


def student_record(
    config: CompressionConfig,
    records: dict[str, Any],
    student_dir: Path,
    candidate: Candidate,
    model_config: Any,
    parameters: int,
    multiply_adds: int,
    source_multiply_adds: int,
) -> dict[str, Any]:
    """The report's `student` entries both compress paths share: where, which shape, its size and cost, extraction."""
    return {
        "path": str(student_dir),
        "shape": candidate.key,
        "config": {
            name: getattr(model_config, name)
            for name in (
                "num_hidden_layers",
                "num_attention_heads",
                "hidden_size",
                "intermediate_size",
                "attention_head_size",
            )
        },
        "parameters": parameters,
        "encoder_multiply_adds": multiply_adds,
        "multiply_adds_ratio": multiply_adds / source_multiply_adds,
        "multiply_adds_sequence_length": config.cost_sequence_length,
        "extraction": records["distill"],
    }


def publish(config: CompressionConfig, out: Path, report: dict[str, Any]) -> None:
    """
    The last step of both `compress` paths: saves `report` as `OUTPUT/compression_report.json`, makes
    `OUTPUT/student` the folder to publish (its `README.md` card written from the saved report, the report, the
    front plot and the ONNX export beside the weights: `hf_bort.cards.write_compressed_card`) and, with
    `push_to_hub`, pushes that folder in one commit and records the push in `report["hub"]` (saved again).
    """
    from ..cards import write_compressed_card

    (out / REPORT_NAME).write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    model_name = config.hub_model_id.split("/")[-1] if config.hub_model_id else None
    write_compressed_card(
        out, json.loads((out / REPORT_NAME).read_text()), model_name=model_name, repo_id=config.hub_model_id
    )
    if config.push_to_hub:
        from ..hub import push_to_hub

        report["hub"] = push_to_hub(
            out / "student", config.hub_model_id, private=config.hub_private_repo, revision=config.hub_revision
        )
        (out / REPORT_NAME).write_text(json.dumps(report, indent=1, default=json_default) + "\n")


def search_record(search, result, chosen, plot: str | None) -> dict[str, Any]:
    """What both `compress` paths record of a finished search: the choice, rungs, steps and the Pareto front."""
    return {
        "searched": True,
        "candidate": chosen.candidate.to_dict(),
        "error": chosen.error,
        "metrics": chosen.metrics,
        "objective": result.objective_name,
        "run_id": search.run_id,
        "rungs": result.rungs,
        "survivors_per_rung": result.survivors_per_rung,
        "candidates_searched": result.num_candidates,
        "fully_trained": len(result.final),
        "training_steps": training_steps(result),
        "front": [
            {
                "candidate": r.candidate.key,
                "params": r.params,
                "multiply_adds": r.multiply_adds,
                "multiply_adds_ratio": r.multiply_adds / result.source_multiply_adds,
                "latency_ms": r.latency_ms,
                "error": r.error,
                **r.metrics,
            }
            for r in result.pareto_front()
        ],
        "plot": plot,
    }


def training_steps(result) -> dict[str, int]:
    """Training steps the search spent (warm intervals: each evaluation adds its steps beyond the previous rung)."""
    previous = {}
    total = 0
    for r in sorted(result.evaluations, key=lambda r: r.steps):
        total += r.steps - previous.get(r.candidate.key, 0)
        previous[r.candidate.key] = r.steps
    return {"search_total": total, "exhaustive_equivalent": result.num_candidates * result.max_steps}


def front_picks(result) -> dict[str, Any]:
    """The front's lowest-error point within 10 %, 25 % and 50 % of the source's multiply-adds."""
    picks = {}
    for ratio in (0.10, 0.25, 0.5):
        try:
            pick = result.choose(max_cost_ratio=ratio) if result.cost == "multiply_adds" else None
        except ValueError:
            pick = None
        if pick is not None:
            picks[f"{ratio:.2f}"] = {"candidate": pick.candidate.key, "error": pick.error, **pick.metrics}
    return picks
