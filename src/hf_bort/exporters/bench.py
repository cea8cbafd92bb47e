"""CPU benchmark: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime dynamic int8, with analytic multiply-adds.

Each model is exported once with [`export_onnx`] (feature-extraction, validated, plus a dynamic-int8 copy); then,
for every (batch size, sequence length), each engine is timed alone (PyTorch, then ORT fp32, then ORT int8; an ORT
session is destroyed before the next engine starts, so its spinning threads never overlap another engine), after
warm-up, with the thread count pinned for both runtimes. Latencies are reported as p50/p90/p99, throughput as
sequences per second at the mean latency. Every measured ratio is reported next to the analytic ratio of
multiply-adds ([`multiply_adds`]), and achieved GFLOP/s (2 x multiply-adds / p50) next to a measured fp32 matmul peak.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..measure import (
    BENCH_ENGINES,
    bench_machine_info,
    measure_matmul_peak,
    ort_session,
    percentile,
    random_inputs,
    session_feed,
    time_calls,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

ENGINES: tuple[str, ...] = BENCH_ENGINES
# Named random-weight models (speed does not depend on the weights) and the packaged real encoder.
NAMED_MODELS: tuple[str, ...] = ("bert-base", "bert-large", "bort", "bort-paper", "minilm")


def multiply_adds(config: PretrainedConfig, batch_size: int, seq_len: int) -> int:
    """Analytic multiply-adds of one encoder forward pass of `batch_size` sequences of `seq_len` tokens: `batch_size`
    times [`hf_bort.ose.costs.encoder_multiply_adds`] (the one multiply-add formula of hf_bort, pooler and heads
    excluded) of the config translated to a Bort config (any supported encoder family)."""
    from ..models.bort.convert import bort_config_from
    from ..ose.costs import encoder_multiply_adds

    return batch_size * encoder_multiply_adds(bort_config_from(config), seq_len)


@dataclass
class BenchConfig:
    """Options of [`run_benchmark`] (and of `hf-bort bench`)."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 8], metadata={"help": "Batch sizes to time."})
    seq_lengths: list[int] = field(default_factory=lambda: [128], metadata={"help": "Sequence lengths to time."})
    threads: int = field(default=0, metadata={"help": "Threads for PyTorch and ORT (0: all cores)."})
    warmup: int = field(default=3, metadata={"help": "Untimed runs before timing each engine."})
    iterations: int = field(default=20, metadata={"help": "Timed runs per engine and shape (at most)."})
    max_seconds: float = field(
        default=10.0, metadata={"help": "Stop timing a cell after this many seconds (at least 3 timed runs)."}
    )
    engines: list[str] = field(default_factory=lambda: list(ENGINES), metadata={"help": "Engines to time."})
    atol: float = field(default=1e-3, metadata={"help": "fp32 export validation tolerance."})
    seed: int = field(default=0, metadata={"help": "Seed for random weights and inputs."})
    peak_size: int = field(default=2048, metadata={"help": "Matrix size of the fp32 matmul peak measurement."})

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "seq_lengths"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers; got {values!r}.")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: all cores); got {self.threads}.")
        if self.threads == 0:
            self.threads = os.cpu_count() or 1
        if self.warmup < 0 or self.iterations < 1:
            raise ValueError(f"warmup must be >= 0 and iterations >= 1; got {self.warmup}, {self.iterations}.")
        if self.peak_size < 1:
            raise ValueError(f"peak_size must be >= 1; got {self.peak_size}.")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0; got {self.max_seconds}.")
        unknown = [engine for engine in self.engines if engine not in ENGINES]
        if unknown or not self.engines:
            raise ValueError(f"engines must be a non-empty subset of {', '.join(ENGINES)}; got {self.engines!r}.")


@dataclass
class BenchResult:
    """Rows of timings, export validation per model, same-run ratios, machine info."""

    config: dict[str, Any]
    machine: dict[str, Any]
    models: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    engine_ratios: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    default_name: ClassVar[str] = "bench"

    def plot(self, path: str | os.PathLike) -> Path | None:
        """The run's PNG (see [`plot`]); None without matplotlib."""
        return plot(self, path)

    def save(self, output_dir: str | os.PathLike, name: str | None = None) -> dict[str, str]:
        """
        Write `<name>.json`, `<name>.md` and (with matplotlib) `<name>.png` (`name` defaults to the class's
        `default_name`); return the paths written.
        """
        name = name or self.default_name
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = {"json": str(output_dir / f"{name}.json"), "markdown": str(output_dir / f"{name}.md")}
        Path(paths["json"]).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        Path(paths["markdown"]).write_text(self.to_markdown())
        png = self.plot(output_dir / f"{name}.png")
        if png is not None:
            paths["png"] = str(png)
        return paths

    def to_markdown(self) -> str:
        lines = [
            f"Threads: {self.config['threads']}; matmul peak {self.machine['matmul_peak_gflops']:.1f} GFLOP/s "
            f"({self.machine['cpu']}).",
            "",
            "| model | engine | batch | seq | p50 ms | p90 ms | p99 ms | seq/s | GMAC | GFLOP/s | % peak |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row['model']} | {row['engine']} | {row['batch_size']} | {row['seq_len']} | {row['p50_ms']:.2f} "
                f"| {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | {row['throughput']:.1f} | {row['macs'] / 1e9:.2f} "
                f"| {row['gflops']:.1f} | {100 * row['peak_fraction']:.0f} |"
            )
        if self.engine_ratios:
            lines += [
                "",
                "| model | batch | seq | ORT fp32 / PyTorch | fastest fp32 | ORT int8 / ORT fp32 | fastest "
                "| int8 argmax agreement | int8 emb. cosine (mean) |",
                "|---|---:|---:|---:|---|---:|---|---:|---:|",
            ]
            for ratio in self.engine_ratios:
                lines.append(
                    f"| {ratio['model']} | {ratio['batch_size']} | {ratio['seq_len']} "
                    f"| {_fmt(ratio.get('ort_fp32_over_pytorch'))}x | {ratio.get('fastest_fp32_engine') or '-'} "
                    f"| {_fmt(ratio.get('int8_over_fp32'))}x | {ratio.get('fastest_engine') or '-'} "
                    f"| {_fmt_pct(self.models[ratio['model']].get('argmax_agreement'))} "
                    f"| {_fmt(self.models[ratio['model']].get('int8_embedding_cosine_mean'), 4)} |"
                )
        if self.comparisons:
            lines += [
                "",
                "| model | vs | engine | batch | seq | measured speedup | analytic MAC ratio | measured / analytic |",
                "|---|---|---|---:|---:|---:|---:|---:|",
            ]
            for item in self.comparisons:
                lines.append(
                    f"| {item['model']} | {item['reference']} | {item['engine']} | {item['batch_size']} "
                    f"| {item['seq_len']} | {item['measured_speedup']:.2f}x | {item['analytic_ratio']:.2f}x "
                    f"| {100 * item['fraction_of_analytic']:.0f}% |"
                )
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def plot(result: BenchResult, path: str | os.PathLike) -> Path | None:
    """p50 latency per model and engine, one panel per shape; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    shapes = sorted({(row["batch_size"], row["seq_len"]) for row in result.rows})
    models = list(dict.fromkeys(row["model"] for row in result.rows))
    engines = [engine for engine in ENGINES if any(row["engine"] == engine for row in result.rows)]
    figure, axes = plt.subplots(1, len(shapes), figsize=(max(6, 1.1 * len(models)) * len(shapes), 4.5), squeeze=False)
    width = 0.8 / max(len(engines), 1)
    for axis, (batch, seq) in zip(axes[0], shapes, strict=True):
        for index, engine in enumerate(engines):
            values = [
                next(
                    (
                        r["p50_ms"]
                        for r in result.rows
                        if (r["model"], r["engine"], r["batch_size"], r["seq_len"]) == (m, engine, batch, seq)
                    ),
                    0.0,
                )
                for m in models
            ]
            axis.bar([i + index * width for i in range(len(models))], values, width, label=engine)
        axis.set_xticks([i + width * (len(engines) - 1) / 2 for i in range(len(models))])
        axis.set_xticklabels(models, rotation=30, ha="right")
        axis.set_yscale("log")
        axis.set_ylabel("p50 latency (ms, log)")
        axis.set_title(f"batch {batch}, seq {seq}, {result.config['threads']} threads")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


machine_info = bench_machine_info  # the name this module exported before hf_bort.measure


def check_bench_model(spec: PreTrainedModel | str | os.PathLike) -> None:
    """
    Refuse, before any benchmarking, a model the benchmark cannot count (its multiply-adds need a Bort or BERT-family
    encoder): a missing path, a file, or a GPT-2 / T5 / … checkpoint gets `convert`'s refusal.
    """
    import transformers

    from .._sources import check_source
    from ..models.bort.configuration_bort import BORT_PRESETS
    from ..models.bort.convert import check_model_type

    if not isinstance(spec, (str, os.PathLike)):
        check_model_type(getattr(getattr(spec, "config", None), "model_type", None))
        return
    text = str(spec)
    if text in NAMED_MODELS or text in BORT_PRESETS:
        return
    if not Path(text).exists() and "/" not in text:
        raise ValueError(f"model {text!r} is neither one of {', '.join(NAMED_MODELS)} nor an existing path.")
    check_source(text, "model")
    check_model_type(transformers.AutoConfig.from_pretrained(text).model_type)


def resolve_model(spec: str | os.PathLike, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """A feature-extraction model and its tokenizer (or None) from a name in `NAMED_MODELS` or a path / Hub id."""
    import torch
    import transformers

    from ..assets import packaged_minilm_path
    from ..models.bort import BORT_PRESETS, BortConfig, BortModel, register

    register()  # the bort Auto classes, for checkpoints of type bort

    spec = str(spec)
    torch.manual_seed(seed)
    if spec == "bert-base":
        return transformers.BertModel(transformers.BertConfig()).eval(), None
    if spec == "bert-large":
        config = transformers.BertConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
        )
        return transformers.BertModel(config).eval(), None
    if spec in BORT_PRESETS:
        return BortModel(BortConfig.from_preset(spec)).eval(), None
    path: str | os.PathLike = packaged_minilm_path() if spec == "minilm" else spec
    if spec != "minilm" and not Path(spec).exists() and "/" not in spec:
        raise ValueError(f"model {spec!r} is neither one of {', '.join(NAMED_MODELS)} nor an existing path.")
    model = transformers.AutoModel.from_pretrained(path).eval()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError):
        tokenizer = None
    return model, tokenizer


def timing_row(
    model: str, engine: str, batch_size: int, seq_len: int, times: list[float], macs: int, peak: float
) -> dict[str, Any]:
    """One result row: p50/p90/p99 and mean latency (ms), throughput (sequences/s), multiply-adds, GFLOP/s."""
    p50 = percentile(times, 0.5)
    return {
        "model": model,
        "engine": engine,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "iterations": len(times),
        "p50_ms": 1e3 * p50,
        "p90_ms": 1e3 * percentile(times, 0.9),
        "p99_ms": 1e3 * percentile(times, 0.99),
        "mean_ms": 1e3 * statistics.fmean(times),
        "throughput": batch_size / statistics.fmean(times),
        "macs": macs,
        "gflops": 2 * macs / p50 / 1e9,
        "peak_fraction": 2 * macs / p50 / 1e9 / peak,
    }


def run_benchmark(
    models: dict[str, PreTrainedModel | str | os.PathLike] | Sequence[str],
    config: BenchConfig | None = None,
    comparisons: Sequence[tuple[str, str]] = (),
    tokenizers: dict[str, Any] | None = None,
    validation_texts: Sequence[str] | None = None,
    log: Callable[[str], None] | None = print,
) -> BenchResult:
    """Benchmark each model on each engine and shape; see the module docstring.

    Args:
        models: name -> model (a feature-extraction `PreTrainedModel`) or spec for [`resolve_model`];
            or a list of specs.
        config: [`BenchConfig`].
        comparisons: (model, reference) pairs: measured speedup of `model` over `reference` per engine and shape,
            next to the analytic multiply-add ratio.
        tokenizers: name -> tokenizer, for validation on real sentences (models resolved from a path bring theirs).
        validation_texts: sentences for export validation and int8 argmax agreement (default: `VALIDATION_TEXTS`).
        log: progress printer (None: silent).
    """
    import torch

    from .onnx import export_onnx, require_onnx

    config = config or BenchConfig()
    if not isinstance(models, dict):
        models = {str(spec): spec for spec in models}
    if not models:
        raise ValueError("models must name at least one model.")
    for model_name, reference in comparisons:
        if model_name not in models or reference not in models:
            raise ValueError(f"comparisons must name benchmarked models; got ({model_name!r}, {reference!r}).")
    for spec in models.values():  # every model is checked before the first one is benchmarked
        check_bench_model(spec)
    needs_ort = any(engine != "pytorch" for engine in config.engines)
    if needs_ort:
        require_onnx()
    tokenizers = dict(tokenizers or {})
    log = log or (lambda message: None)

    torch.set_num_threads(config.threads)
    peak = measure_matmul_peak(config.threads, config.peak_size)
    machine = bench_machine_info(config.threads, peak)
    log(f"threads={config.threads} matmul peak {peak:.1f} GFLOP/s")

    rows: list[dict[str, Any]] = []
    model_info: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hf-bort-bench-") as workdir:
        for name, spec in models.items():
            if isinstance(spec, (str, os.PathLike)):
                model, tokenizer = resolve_model(spec, seed=config.seed)
                tokenizers.setdefault(name, tokenizer)
            else:
                model = spec.eval()
            info: dict[str, Any] = {
                "model_type": model.config.model_type,
                "class": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()),
            }
            onnx_paths: dict[str, str] = {}
            if needs_ort:
                started = time.perf_counter()
                export = export_onnx(
                    model,
                    Path(workdir) / name.replace("/", "_"),
                    task="feature-extraction",
                    quantize="dynamic-int8" if "ort-int8" in config.engines else None,
                    tokenizer=tokenizers.get(name),
                    atol=config.atol,
                    validation_texts=validation_texts,
                )
                info.update(
                    export_seconds=time.perf_counter() - started,
                    max_abs_diff=export.max_abs_diff,
                    int8_max_abs_diff=export.int8_max_abs_diff,
                    argmax_agreement=export.argmax_agreement,
                    fused_operators={op: count for op, count in export.fused_operators.items() if count},
                    **export.extra,
                    validation_examples=export.num_validation_examples,
                    validation_inputs="tokenized sentences" if tokenizers.get(name) is not None else "random ids",
                )
                onnx_paths = {"ort-fp32": export.onnx_path}
                if export.quantized_path:
                    onnx_paths["ort-int8"] = export.quantized_path
                log(
                    f"{name}: exported, max abs diff {export.max_abs_diff:.2e}, "
                    f"int8 agreement {export.argmax_agreement}, {export.fusion_summary()}"
                )
            model_info[name] = info
            for batch_size in config.batch_sizes:
                for seq_len in config.seq_lengths:
                    macs = multiply_adds(model.config, batch_size, seq_len)
                    inputs = random_inputs(model.config, batch_size, seq_len, config.seed)
                    for engine in config.engines:
                        times = time_engine(engine, model, inputs, onnx_paths, config)
                        rows.append(timing_row(name, engine, batch_size, seq_len, times, macs, peak))
                        log(f"{name} {engine} b={batch_size} L={seq_len}: p50 {rows[-1]['p50_ms']:.2f} ms")
            del model
            gc.collect()
    machine["load_average_end"] = os.getloadavg()
    # The peak is measured once, before the timings: the figure logged (--verbose), stored and shown in bench.md.
    return BenchResult(
        config=asdict(config),
        machine=machine,
        models=model_info,
        rows=rows,
        engine_ratios=engine_ratios(rows),
        comparisons=speedup_comparisons(rows, comparisons),
    )


def time_engine(
    engine: str, model: PreTrainedModel, inputs: dict[str, Any], onnx_paths: dict[str, str], config: BenchConfig
) -> list[float]:
    """Seconds per forward pass of `model` on `engine` (`pytorch`, or the ONNX file `onnx_paths[engine]` in ONNX
    Runtime), timed with [`hf_bort.measure.time_calls`] under `config`'s warm-up, iterations and time cap."""
    import torch

    if engine == "pytorch":
        torch.set_num_threads(config.threads)

        def run() -> Any:
            with torch.inference_mode():
                return model(**inputs)

        return time_calls(run, config.warmup, config.iterations, config.max_seconds)
    session = ort_session(onnx_paths[engine], config.threads)
    feed = session_feed(session, inputs)
    try:
        return time_calls(partial(session.run, None, feed), config.warmup, config.iterations, config.max_seconds)
    finally:
        del session  # stop its (spinning) thread pool before the next engine runs
        gc.collect()


def _cell(rows: list[dict[str, Any]], model: str, engine: str, batch: int, seq: int) -> dict[str, Any] | None:
    for row in rows:
        if (row["model"], row["engine"], row["batch_size"], row["seq_len"]) == (model, engine, batch, seq):
            return row
    return None


def engine_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and shape, the p50 speed-ups between engines measured in the same run, and which engine was fastest
    in fp32 (PyTorch or ORT: named, so a table never implies ORT wins where it loses) and overall."""
    ratios = []
    for model, batch, seq in dict.fromkeys((r["model"], r["batch_size"], r["seq_len"]) for r in rows):
        pt, fp32, int8 = (_cell(rows, model, engine, batch, seq) for engine in ENGINES)
        ratio: dict[str, Any] = {"model": model, "batch_size": batch, "seq_len": seq}
        if pt and fp32:
            ratio["ort_fp32_over_pytorch"] = pt["p50_ms"] / fp32["p50_ms"]
        if fp32 and int8:
            ratio["int8_over_fp32"] = fp32["p50_ms"] / int8["p50_ms"]
        if pt and int8:
            ratio["int8_over_pytorch"] = pt["p50_ms"] / int8["p50_ms"]
        timed = {cell["engine"]: cell["p50_ms"] for cell in (pt, fp32, int8) if cell}
        fp32_timed = {name: ms for name, ms in timed.items() if name != "ort-int8"}
        ratio["fastest_fp32_engine"] = min(fp32_timed, key=fp32_timed.get) if fp32_timed else None
        ratio["fastest_engine"] = min(timed, key=timed.get) if timed else None
        ratios.append(ratio)
    return ratios


def speedup_comparisons(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per (model, reference) pair, engine and shape: measured p50 speed-up next to the multiply-add ratio."""
    out = []
    for model, reference in pairs:
        for row in rows:
            if row["model"] != model:
                continue
            ref = _cell(rows, reference, row["engine"], row["batch_size"], row["seq_len"])
            if ref is None:
                continue
            measured = ref["p50_ms"] / row["p50_ms"]
            analytic = ref["macs"] / row["macs"]
            out.append(
                {
                    "model": model,
                    "reference": reference,
                    "engine": row["engine"],
                    "batch_size": row["batch_size"],
                    "seq_len": row["seq_len"],
                    "measured_speedup": measured,
                    "analytic_ratio": analytic,
                    "fraction_of_analytic": measured / analytic,
                }
            )
    return out
