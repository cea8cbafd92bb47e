"""
Issue 3, benchmark 3, the pruning-tool baseline: TextPruner (`pip install --no-deps textpruner==1.1.post2`: its
metadata pins numpy<1.22, which has no wheel for Python 3.11; it runs on today's numpy, and its other requirements
are in the `dev` extra)
prunes attention heads and FFN neurons of the RT-fine-tuned all-MiniLM-L6-v2 to at most --max-cost-ratio of its
encoder multiply-adds (the same cost model and reference length as the OSE student), then the pruned model is
fine-tuned again and measured exactly like the former `ose_student_rt.py` measured its models (same splits,
accuracy, latency, reload check; the helpers are in `rt_common.py`).

Recipe (TextPruner's own "iterative" pruning, the one the issue's reference 83.1 used):
1. Source: the packaged MiniLM-L6 fine-tuned 3 epochs on RT (`--source-finetuned`, e.g. the `source-finetuned`
   folder `hf-bort compress` writes; fine-tuned here with the same recipe when not given).
2. `TransformerPruner(pruning_method="iterative")`: --n-iters rounds of gradient x weight importance of the CE loss on
   --calibration-batches batches of RT train, heads to --target-heads per layer on average (uneven across layers,
   --even-heads for the same count everywhere), FFN to --target-ffn per layer (TextPruner only saves even FFN sizes).
3. Fine-tuning: --epochs epochs, the former `ose_student_rt.py` recipe (AdamW, lr, batch, linear decay, no warm-up,
   dynamic padding). `--losses ce kd` runs it twice from the same pruned weights: plain CE (the reference recipe) and
   the OSE student's task distillation from the fine-tuned source (same loss, same budget as the student).
   `--losses kd_es` is the task distillation `hf-bort compress` runs today (issue 24), through the library's
   `hf_bort.compress.recipe.finetune` with the `task` stage's settings: the teacher's logits cached, dev (the
   validation split) evaluated every epoch, --task-epochs at least, then stopped after --task-patience epochs without
   a better dev --best-metric, at most --task-max-epochs (the learning rate decaying over them), the best dev epoch
   kept.
4. Latency (PyTorch eager and ONNX Runtime fp32, batch 1 and 32, length 64) interleaved with the source; reload of
   the saved model with plain `AutoModelForSequenceClassification.from_pretrained` (no trust_remote_code needed:
   `config.pruned_heads` and `intermediate_size` describe the pruned shape).

TextPruner uses `PreTrainedModel.prune_heads`, which transformers 5 removed: run this on the pinned stack (4.57.6).

Run: flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/textpruner_rt.py \
         --source-finetuned /tmp/ose_student_full/source-finetuned
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import rt_common as shared  # noqa: E402  (also sets HF_HUB_OFFLINE and TOKENIZERS_PARALLELISM)
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from hf_bort import BortConfig, convert_to_bort, count_parameters  # noqa: E402
from hf_bort.assets import packaged_minilm_path  # noqa: E402
from hf_bort.ose import encoder_multiply_adds, load_source_as_bort  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-finetuned", default=None, help="RT-fine-tuned MiniLM (else fine-tuned here)")
    parser.add_argument("--target-heads", type=int, default=3, help="average heads kept per layer (of 12)")
    parser.add_argument("--target-ffn", type=int, default=384, help="FFN neurons kept per layer (of 1536)")
    parser.add_argument("--even-heads", action="store_true", help="the same number of heads in every layer")
    parser.add_argument("--n-iters", type=int, default=8, help="TextPruner pruning iterations")
    parser.add_argument("--calibration-batches", type=int, default=32, help="batches of 32 RT train texts")
    parser.add_argument("--max-cost-ratio", type=float, default=0.25)
    parser.add_argument("--losses", nargs="+", default=["ce", "kd"], choices=("ce", "kd", "kd_es"))
    parser.add_argument("--task-epochs", type=float, default=3.0, help="kd_es: epochs always run")
    parser.add_argument("--task-patience", type=int, default=2, help="kd_es: epochs without a better dev score")
    parser.add_argument("--task-max-epochs", type=int, default=10, help="kd_es: at most (the lr decays over them)")
    parser.add_argument("--best-metric", default="macro_f1", choices=("macro_f1", "accuracy"), help="kd_es: dev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-group-by-length", dest="group_by_length", action="store_false")
    parser.add_argument("--kd-alpha-ce", type=float, default=0.5)
    parser.add_argument("--kd-alpha-kd", type=float, default=0.5)
    parser.add_argument("--kd-temperature", type=float, default=2.0)
    parser.add_argument("--max-train", type=int, default=None, help="debug: first N training examples")
    parser.add_argument("--max-eval", type=int, default=None, help="debug: first N validation / test examples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-threads", type=int, default=2)
    parser.add_argument("--latency-runs-b1", type=int, default=200)
    parser.add_argument("--latency-runs-b32", type=int, default=30)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--no-ort", dest="ort", action="store_false")
    parser.add_argument("--work-dir", default="/tmp/textpruner_rt")
    parser.add_argument("--output", default=str(RESULTS / "textpruner_rt.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.target_heads <= 12:
        parser.error(f"--target-heads must be in [1, 12] (MiniLM has 12 heads per layer), got {args.target_heads}.")
    if not 1 <= args.target_ffn <= 1536:
        parser.error(f"--target-ffn must be in [1, 1536] (MiniLM's FFN width), got {args.target_ffn}.")
    if args.n_iters < 1:
        parser.error(f"--n-iters must be >= 1, got {args.n_iters}.")
    if args.task_patience < 0:
        parser.error(f"--task-patience must be >= 0 (0: exactly --task-epochs), got {args.task_patience}.")
    if args.task_patience and args.task_max_epochs < args.task_epochs:
        parser.error(f"--task-max-epochs ({args.task_max_epochs}) must be >= --task-epochs ({args.task_epochs}).")
    return args


def pruned_cost_ratio(source: BortConfig, heads_per_layer: list[int], ffn_per_layer: list[int]) -> float:
    """Encoder multiply-adds (length 128, `encoder_multiply_adds`) of the pruned shape over the source's."""
    pruned = BortConfig(
        **{**source.to_dict(), "num_attention_heads": heads_per_layer, "intermediate_size": ffn_per_layer}
    )
    length = shared.REFERENCE_LENGTH
    return encoder_multiply_adds(pruned, length) / encoder_multiply_adds(source, length)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        from textpruner import GeneralConfig, TransformerPruner, TransformerPruningConfig
    except ImportError as error:
        raise SystemExit("textpruner is missing: pip install --no-deps textpruner==1.1.post2") from error
    torch.set_num_threads(args.threads)
    total_start = time.perf_counter()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timings: dict[str, float] = {}

    source_path = packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(source_path)
    raw, data = shared.load_rt_splits(args, tokenizer)

    # ------------------------------------------------------------------ cost check before any long computation
    source_config = load_source_as_bort(source_path).config
    layers = source_config.num_hidden_layers
    ratio = pruned_cost_ratio(source_config, [args.target_heads] * layers, [args.target_ffn] * layers)
    if ratio > args.max_cost_ratio:
        raise SystemExit(
            f"--target-heads {args.target_heads} / --target-ffn {args.target_ffn} keep {ratio:.4f} of the source's "
            f"encoder multiply-adds, above --max-cost-ratio {args.max_cost_ratio}."
        )
    print(f"target: {args.target_heads} heads and {args.target_ffn} FFN per layer = {ratio:.4f} of MACs", flush=True)

    # ------------------------------------------------------------------ fine-tuned source (teacher, pruning input)
    results: dict[str, dict] = {}
    evaluator_args = TrainingArguments(
        str(work / "eval"), per_device_eval_batch_size=128, use_cpu=True, report_to=[], disable_tqdm=True
    )
    collator = DataCollatorWithPadding(tokenizer)
    if args.source_finetuned:
        source = AutoModelForSequenceClassification.from_pretrained(args.source_finetuned).eval()
        evaluator = Trainer(model=source, args=evaluator_args, data_collator=collator)
        results["source"] = {
            "reused_from": args.source_finetuned,
            "validation_accuracy": shared.accuracy(evaluator, data["validation"]),
            "test_accuracy": shared.accuracy(evaluator, data["test"]),
        }
    else:
        set_seed(args.seed)
        source = AutoModelForSequenceClassification.from_pretrained(source_path, num_labels=2)
        results["source"] = shared.finetune(source, "source", data, tokenizer, args)
        source.eval()
    results["source"]["parameters"] = sum(p.numel() for p in source.parameters())
    teacher = convert_to_bort(source).eval()
    print(f"[source] {results['source']}", flush=True)

    # ------------------------------------------------------------------ TextPruner iterative pruning
    set_seed(args.seed)
    source_dir = args.source_finetuned or _save(source, tokenizer, work / "source-finetuned")
    model = AutoModelForSequenceClassification.from_pretrained(source_dir)
    calibration = (
        data["train"].shuffle(seed=args.seed).select(range(min(len(data["train"]), 32 * args.calibration_batches)))
    )
    loader = DataLoader(calibration, batch_size=32, collate_fn=collator)
    pruning_config = TransformerPruningConfig(
        target_ffn_size=args.target_ffn,
        target_num_of_heads=args.target_heads,
        pruning_method="iterative",
        n_iters=args.n_iters,
        head_even_masking=args.even_heads,
        ffn_even_masking=True,
    )
    pruner = TransformerPruner(
        model,
        transformer_pruning_config=pruning_config,
        general_config=GeneralConfig(use_device="cpu", output_dir=str(work / "textpruner")),
    )
    start = time.perf_counter()
    pruner.prune(dataloader=loader, save_model=False)
    timings["pruning_s"] = time.perf_counter() - start
    heads = [int(h) for h in pruner.head_mask.sum(-1).tolist()]
    ffn = [int(f) for f in pruner.ffn_mask.sum(-1).tolist()]
    model.config.intermediate_size = ffn[0]  # even FFN masking: one size for every layer
    achieved = pruned_cost_ratio(source_config, heads, ffn)
    pruning = {
        "tool": "textpruner 1.1.post2 TransformerPruner",
        "config": dict(vars(pruning_config)),
        "calibration_texts": len(calibration),
        "heads_per_layer": heads,
        "ffn_per_layer": ffn,
        "multiply_adds_ratio_L128": achieved,
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_s": timings["pruning_s"],
    }
    evaluator = Trainer(model=model.eval(), args=evaluator_args, data_collator=collator)
    pruning["test_accuracy_before_finetuning"] = shared.accuracy(evaluator, data["test"])
    print(f"pruning: {pruning}", flush=True)
    pruned_dir = work / "pruned"
    _save(model, tokenizer, pruned_dir)
    del model, pruner

    # ------------------------------------------------------------------ fine-tuning the pruned model
    finetuned = {"source": source}
    for loss in args.losses:
        name = f"textpruner_{loss}"
        set_seed(args.seed)
        model = AutoModelForSequenceClassification.from_pretrained(pruned_dir)
        if loss == "kd_es":
            results[name] = task_distillation_as_compress(model, name, data, tokenizer, teacher, args)
        else:
            teacher_or_none = teacher if loss == "kd" else None
            results[name] = shared.finetune(model, name, data, tokenizer, args, teacher=teacher_or_none)
            results[name]["loss"] = "CE" if loss == "ce" else "task distillation from the fine-tuned source"
        results[name]["multiply_adds_ratio_L128"] = achieved
        finetuned[name] = model.eval()
        _save(model, tokenizer, work / f"{name}-finetuned")

    # ------------------------------------------------------------------ reload with plain transformers
    reload = {}
    texts = raw["validation"]["text"][:16]
    for name in finetuned:
        if name != "source":
            reload[name] = shared.reload_check(work / f"{name}-finetuned", finetuned[name], tokenizer, texts)
    print(f"reload: {reload}", flush=True)

    # ------------------------------------------------------------------ latency
    torch.set_num_threads(args.latency_threads)
    latency: dict[str, dict] = {}
    timed = {"source": source, "textpruner": finetuned[f"textpruner_{args.losses[0]}"]}
    start = time.perf_counter()
    for batch_size, runs in ((1, args.latency_runs_b1), (32, args.latency_runs_b32)):
        runners = {
            n: shared.torch_runner(m, shared.latency_inputs(m.config, batch_size, 64, args.seed))
            for n, m in timed.items()
        }
        latency[f"pytorch_b{batch_size}_L64"] = shared.measure_latency(runners, runs, args.latency_rounds)
    if args.ort:
        try:
            for batch_size, runs in ((1, args.latency_runs_b1), (32, args.latency_runs_b32)):
                runners = {}
                for name, model in timed.items():
                    inputs = shared.latency_inputs(model.config, batch_size, 64, args.seed)
                    runners[name], _ = shared.ort_runner(
                        str(work / f"onnx-{name}"), model, tokenizer, inputs, args.latency_threads
                    )
                latency[f"onnxruntime_fp32_b{batch_size}_L64"] = shared.measure_latency(
                    runners, runs, args.latency_rounds
                )
        except Exception as error:  # noqa: BLE001 - keep the run, say why ORT timing is missing
            latency["onnxruntime_error"] = f"{type(error).__name__}: {error}"
    timings["latency_s"] = time.perf_counter() - start
    for cell in latency.values():
        if isinstance(cell, dict) and "source" in cell:
            for entry in cell.values():
                entry["ratio_to_source"] = entry["p50_ms"] / cell["source"]["p50_ms"]
    print(f"latency: {json.dumps(latency, indent=1)}", flush=True)

    timings["total_s"] = time.perf_counter() - total_start
    command = "flock /tmp/hf_bort_cpu.lock env PYTHONPATH=src python benchmarks/textpruner_rt.py"
    out = {
        "command": " ".join([command, *(argv if argv is not None else sys.argv[1:])]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")}
        | {"reference_length_for_multiply_adds": shared.REFERENCE_LENGTH},
        "machine": shared.machine_info() | {"torch_threads_latency": args.latency_threads},
        "source_parameters_text_classification": count_parameters(source_config, task="text-classification").total,
        "pruning": pruning,
        "results": results,
        "reload": reload,
        "latency": latency,
        "wall_times_s": timings,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {args.output}; total {timings['total_s']:.0f} s", flush=True)


def task_distillation_as_compress(model, name: str, data: dict, tokenizer, teacher, args) -> dict:
    """`compress`'s `task` stage on the pruned model (the library's recipe and settings), then dev and test."""
    from hf_bort.compress import recipe

    training = recipe.finetune(
        model,
        data["train"],
        tokenizer,
        epochs=args.task_max_epochs if args.task_patience else args.task_epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        work_dir=Path(args.work_dir) / f"ft-{name}",
        show_progress=False,
        teacher=teacher,
        alpha_ce=args.kd_alpha_ce,
        alpha_kd=args.kd_alpha_kd,
        temperature=args.kd_temperature,
        eval_dataset=data["validation"],
        best_metric=args.best_metric,
        patience=args.task_patience or None,
        patience_after_epochs=args.task_epochs,
        cache_teacher_logits=True,
    )
    model.eval()
    validation = recipe.evaluate(model, data["validation"], tokenizer)
    test = recipe.evaluate(model, data["test"], tokenizer)
    result = {
        "training": training,
        "loss": "task distillation from the fine-tuned source as compress's `task` stage (early-stopped, best epoch)",
        "validation_accuracy": validation["accuracy"],
        "validation_macro_f1": validation["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
    }
    print(f"[{name}] {result}", flush=True)
    return result


def _save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


if __name__ == "__main__":
    main()
