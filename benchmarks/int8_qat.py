"""
Does quantization-aware training (compress's `qat` stage, `hf_bort.compress.qat`) make a compress student survive
FULL dynamic int8 (issue 23)? On a finished compress run: the library's `quantization_aware_distillation` on the run's
student for `--steps` steps for each `--targets` value (`teacher`: the run's fine-tuned source, same loss and rows as
the `task` stage; `self`: the student's own starting fp32 logits, checks kept on simulated-int8 agreement with fp32)
at each `--learning-rates` value; target and learning rate are chosen on dev only (full dynamic-int8 label agreement
with the student's own fp32 graph, then simulated-int8 dev accuracy); every pair's dev numbers are reported. Then the
original and the chosen QAT student are exported
(fused fp32 ONNX, `export_onnx`) and quantized (`quantize_exported`: `dynamic-int8` and `smoothed-int8` with
`Int8Config`'s defaults) and measured on dev (validation) and test: label agreement of each int8 graph with its own
fp32 graph (`exporters.agreement.agreement_metrics`), accuracy of fp32 and int8, and PyTorch fp32 test accuracy of
both students. The test split is read only after the choice. Agreement and accuracy only: no timing.

    flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/int8_qat.py \\
        --run /tmp/compress_task/compress_rt_seed0_mac25 --task rt --seed 0 --threads 1 --targets teacher self

The data are the packaged task's splits with `--seed` (and `--train-rows`) exactly as `benchmarks/compress_task.py`
gave them to compress (checked against the split sizes the run's report records). ONNX graphs run in batches of
`--eval-batch-size` (dynamic int8 takes one activation scale per batch tensor). Writes
benchmarks/results/int8_qat_<task>_seed<k>.json with the command and the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from compress_task import TASKS, task_splits  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from hf_bort.measure import bench_machine_info  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("dynamic-int8", "smoothed-int8")


def _feeds(tokenizer, texts: list, max_length: int, size: int, names: set[str]) -> list[dict]:
    """Numpy feeds of `texts` in batches of `size` (each padded to its longest row)."""
    feeds = []
    for start in range(0, len(texts), size):
        encoded = tokenizer(texts[start : start + size], padding=True, truncation=True, max_length=max_length)
        feeds.append({key: _array(value) for key, value in encoded.items() if key in names})
    return feeds


def _array(value):
    import numpy as np

    return np.asarray(value, dtype=np.int64)


def _logits(path: Path, feeds: list[dict], threads: int):
    import numpy as np

    from hf_bort.exporters.quantize import run_onnx

    return np.concatenate([run_onnx(path, feed, ["logits"], threads=threads)["logits"] for feed in feeds])


def _scores(logits, labels) -> float:
    return float((logits.argmax(-1) == labels).mean())


def measure_onnx(student_path: Path, work: Path, texts: dict, labels: dict, calibration: list, args) -> dict:
    """fp32, dynamic-int8 and smoothed-int8 graphs of one student: agreement with fp32 and accuracy per split."""
    import numpy as np
    from transformers import AutoTokenizer

    from hf_bort.exporters import export_onnx
    from hf_bort.exporters.agreement import agreement_metrics
    from hf_bort.exporters.optimize import add_shape_info
    from hf_bort.exporters.quantize import QUANTIZED_NAME
    from hf_bort.measure import ort_session

    shutil.rmtree(work, ignore_errors=True)
    export_onnx(student_path, work, task="text-classification", validation_texts=texts["validation"][:16])
    add_shape_info(work / "model.onnx")
    tokenizer = AutoTokenizer.from_pretrained(work)
    names = {item.name for item in ort_session(work / "model.onnx", 1).get_inputs()}
    feeds = {
        split: _feeds(tokenizer, rows, args.max_length, args.eval_batch_size, names) for split, rows in texts.items()
    }
    calibration_feeds = _feeds(tokenizer, calibration, args.max_length, 8, names)
    fp32 = {split: _logits(work / "model.onnx", split_feeds, args.threads) for split, split_feeds in feeds.items()}
    out: dict = {split: {"fp32_accuracy": _scores(fp32[split], labels[split])} for split in texts}
    # quantize_exported's own agreement check (one batch of the first dev rows) is not the reported one
    (check,) = _feeds(tokenizer, texts["validation"][:64], args.max_length, 64, names)
    for variant in VARIANTS:
        report = quantize_exported_once(work, variant, check, calibration_feeds, args.threads)
        graph = work / f"model_{variant}.onnx"
        shutil.move(work / QUANTIZED_NAME, graph)
        for split, split_feeds in feeds.items():
            int8 = _logits(graph, split_feeds, args.threads)
            agreement = agreement_metrics({"logits": fp32[split]}, {"logits": int8}, np.ones((len(int8), 1)))
            out[split][variant] = {
                "label_agreement": agreement["label_agreement"],
                "accuracy": _scores(int8, labels[split]),
                "accuracy_drop_points": 100 * (out[split]["fp32_accuracy"] - _scores(int8, labels[split])),
            }
        out.setdefault("quantization", {})[variant] = {
            key: report[key] for key in ("target", "per_channel", "quantize_attention", "reduce_range")
        } | {"smoothing": report["variants"][0].get("smoothing", {}).get("alpha")}
    return out


def quantize_exported_once(work: Path, variant: str, check: dict, calibration: list, threads: int) -> dict:
    from hf_bort.exporters import Int8Config
    from hf_bort.exporters.quantize import quantize_exported, run_onnx

    fp32 = run_onnx(work / "model.onnx", check, ["logits"], threads=threads)
    return quantize_exported(
        work,
        variant,
        validation_inputs=check,
        fp32_outputs=fp32,
        calibration_batches=calibration,
        config=Int8Config(threads=threads),
        fused=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished compress output folder (compression_report.json)")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=None, help="as given to benchmarks/compress_task.py")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-5, 3e-5])
    parser.add_argument("--targets", nargs="+", choices=["teacher", "self"], default=["teacher", "self"])
    parser.add_argument("--calibration-rows", type=int, default=128, help="train rows (smoothing scales)")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/int8_qat")
    parser.add_argument("--output", default=None, help="default benchmarks/results/int8_qat_<task>_seed<k>.json")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_bort.compress import recipe
    from hf_bort.compress.qat import DynamicInt8Simulation, quantization_aware_distillation
    from hf_bort.exporters import Int8Config
    from hf_bort.exporters.quantize import QUANTIZE_CHOICES

    assert set(VARIANTS) <= set(QUANTIZE_CHOICES)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    run = Path(args.run)
    report = json.loads((run / "compression_report.json").read_text())
    settings = report["settings"]
    args.max_length = settings["max_length"]
    qat_ran = "dev" in (report.get("qat") or {})
    original = run / ("student-task" if qat_ran else "student")  # the task stage's student
    source = Path(report["source"]["path"])
    data = task_splits(args.task, args.seed, args.train_rows)
    sizes = {split: len(data[split]) for split in ("train", "validation", "test")}
    recorded = report["data"]["sizes"]
    if any(recorded.get(split) != size for split, size in sizes.items()):
        raise SystemExit(f"The run's split sizes {recorded} differ from {sizes}: check --task, --seed, --train-rows.")
    tokenizer = AutoTokenizer.from_pretrained(original)
    train = recipe.tokenise(data["train"], tokenizer, args.max_length)
    dev = recipe.tokenise(data["validation"], tokenizer, args.max_length)
    teacher = AutoModelForSequenceClassification.from_pretrained(source).eval()
    target = Int8Config().resolved_target()[0]
    simulation = DynamicInt8Simulation.for_target(target)
    work = Path(args.work_dir)
    texts = {"validation": list(data["validation"]["text"])}
    labels = {"validation": np.asarray(data["validation"]["label"])}
    calibration = list(data["train"]["text"][: args.calibration_rows])
    result: dict = {
        "command": "flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src "
        + sys.executable
        + " "
        "benchmarks/int8_qat.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "run": str(run),
        "original_student": str(original),
        "teacher": str(source),
        "data": f"{TASKS[args.task].__name__}(seed={args.seed})"
        + (f", {args.train_rows} training rows" if args.train_rows else "")
        + f"; sizes {sizes}; learning rate chosen on validation only, test read after the choice",
        "machine": bench_machine_info(args.threads, None),
        "int8_target": target,
        "max_length": args.max_length,
        "eval_batch_size": args.eval_batch_size,
        "note": "agreement and accuracy only (one thread, other long runs on the CPU): no timing claims",
        "grid": [],
    }
    for qat_target, rate in [(name, rate) for name in args.targets for rate in args.learning_rates]:
        student = AutoModelForSequenceClassification.from_pretrained(original)
        record = quantization_aware_distillation(
            student,
            teacher,
            train,
            dev,
            tokenizer,
            steps=args.steps,
            learning_rate=rate,
            batch_size=settings["batch_size"],
            seed=args.seed,
            work_dir=work / "trainer",
            alpha_ce=settings["alpha_ce"],
            alpha_kd=settings["alpha_kd"],
            temperature=settings["temperature"],
            best_metric=settings["best_checkpoint_metric"],
            simulation=simulation,
            show_progress=args.progress,
            target=qat_target,
        )
        path = work / f"qat-{qat_target}-lr{rate:g}"
        shutil.rmtree(path, ignore_errors=True)
        student.save_pretrained(path)
        tokenizer.save_pretrained(path)
        onnx_dev = measure_onnx(path, work / f"onnx-{qat_target}-lr{rate:g}", texts, labels, calibration, args)
        entry = {"target": qat_target, "learning_rate": rate, "qat": record, "onnx_dev": onnx_dev, "path": str(path)}
        result["grid"].append(entry)
        print(qat_target, rate, record["kept"], onnx_dev["validation"], flush=True)

    def dev_key(entry):
        dynamic = entry["onnx_dev"]["validation"]["dynamic-int8"]
        return dynamic["label_agreement"], entry["qat"]["dev_simulated_int8"]["accuracy"]

    chosen = max(result["grid"], key=dev_key)
    result["chosen_target"], result["chosen_learning_rate"] = chosen["target"], chosen["learning_rate"]
    result["chosen_by"] = "validation: full dynamic-int8 label agreement with fp32, then simulated-int8 accuracy"
    result["dev_summary"] = [
        {
            "target": entry["target"],
            "learning_rate": entry["learning_rate"],
            "kept": entry["qat"]["kept"],
            "simulated_int8_dev": entry["qat"]["dev_simulated_int8"],
            "pytorch_fp32_dev": entry["qat"]["dev"],
            "onnx_dev": entry["onnx_dev"]["validation"],
        }
        for entry in result["grid"]
    ]
    # the test split, read once, after the choice
    texts["test"], labels["test"] = list(data["test"]["text"]), np.asarray(data["test"]["label"])
    test_rows = recipe.tokenise(data["test"], tokenizer, args.max_length)
    models = {"original": original, "qat": Path(chosen["path"])}
    result["students"] = {}
    for name, path in models.items():
        measured = measure_onnx(path, work / f"final-{name}", texts, labels, calibration, args)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        measured["pytorch_fp32_test"] = recipe.evaluate(model, test_rows, tokenizer)
        result["students"][name] = measured
        print(name, {split: measured[split] for split in ("validation", "test")}, flush=True)
    result["qat_minus_original_pytorch_fp32_test_accuracy_points"] = 100 * (
        result["students"]["qat"]["pytorch_fp32_test"]["accuracy"]
        - result["students"]["original"]["pytorch_fp32_test"]["accuracy"]
    )
    result["wall_s"] = time.perf_counter() - started
    output = Path(args.output) if args.output else RESULTS / f"int8_qat_{args.task}_seed{args.seed}.json"
    output.write_text(json.dumps(result, indent=1, default=str) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(output)


if __name__ == "__main__":
    main()
