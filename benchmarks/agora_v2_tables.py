"""
Markdown tables of `benchmarks/agora_v2.py` results (docs/agora.md and README quote them), straight from the JSON:

    python benchmarks/agora_v2_tables.py benchmarks/results/agora_v2.json benchmarks/results/agora_v2_convention.json

Per task and gold-row count: each setting's test accuracy per seed, mean and stopping-part mean; then Agora v2's
paired differences per seed against each setting, with issue 21's targets beside them and whether each is met.
"""

from __future__ import annotations

import json
import sys

LABELS = {
    "plain": "plain (gold rows)",
    "train_union_dev": "train ∪ dev (gold rows ∪ all dev)",
    "agora_v2": "Agora v2, retraining every round (the default when these runs were made)",
    "random": "random, same calls (+ self-training)",
    "margin_al": "margin AL, same calls (+ self-training)",
    "agora_v2_no_st": "Agora v2 without self-training",
    "pseudo_full": "whole pool, soft teacher labels",
    "agora_v1": 'Agora v1 (`agora_version="v1"`)',
    "agora_v2_continue": "**Agora v2 without retraining** (today's default)",
}
# issue 21's targets on the paired difference Agora v2 − setting: (minimum mean, minimum share of seeds positive)
TARGETS = {
    "random": (1.5, 0.8),
    "margin_al": (0.0, None),
    "pseudo_full": (-1.0, None),
    "train_union_dev": (2.0, None),
}


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def _signed(values: list[float]) -> str:
    return " / ".join(f"{v:+.1f}" for v in values)


def target_met(setting: str, paired: dict) -> str:
    if setting not in TARGETS:
        return ""
    minimum, share = TARGETS[setting]
    ok = paired["mean"] >= minimum and (share is None or paired["positive"] >= share * len(paired["seeds"]))
    need = f"≥ {minimum:+.1f}" + (f", {share:.0%} of seeds positive" if share else "")
    return f"{need}: {'met' if ok else 'not met'}"


def tables(result: dict) -> str:
    out = []
    for task, by_n in result["summary"].items():
        teacher = result["teachers"][task]
        for n_key, summary in by_n.items():
            settings = summary["settings"]
            out.append(
                f"#### {task}, {n_key} (teacher test accuracy {100 * teacher['test_accuracy']:.1f} %, "
                f"trained on {teacher['train_rows']} rows disjoint from gold rows and pool)\n"
            )
            out.append(
                "| setting | seeds | test accuracy per seed | mean ± std | stopping part (mean) | teacher calls |"
            )
            out.append("|---|---|---|---|---|---|")
            for name, row in settings.items():
                calls = sorted(set(row["teacher_calls"]))
                out.append(
                    f"| {LABELS.get(name, name)} | {', '.join(map(str, row['seeds']))} | {_fmt(row['test_accuracy'])} "
                    f"| {row['mean']:.1f} ± {row['std']:.1f} | {row['stopping_accuracy_mean']:.1f} "
                    f"| {' / '.join(map(str, calls))} |"
                )
            out.append("")
            for key, base in (
                ("paired_agora_v2_continue_minus", "Agora v2 without retraining (today's default)"),
                ("paired_agora_v2_minus", "Agora v2 retraining every round"),
            ):
                if not summary.get(key):
                    continue
                header = "| seeds | per seed | mean ± std | seeds positive | issue 21 target |"
                out.append(f"| {base} − … (test points) {header}")
                out.append("|---|---|---|---|---|---|")
                for name, paired in summary[key].items():
                    out.append(
                        f"| {LABELS.get(name, name)} | {', '.join(map(str, paired['seeds']))} "
                        f"| {_signed(paired['differences'])} | {paired['mean']:+.1f} ± {paired['std']:.1f} "
                        f"| {paired['positive']} of {len(paired['seeds'])} | {target_met(name, paired)} |"
                    )
                out.append("")
            choice = summary.get("retrain_choice_on_stopping_split")
            if choice:
                out.append(
                    f"\nStopping-part accuracy, v2 with / without per-round retraining (seeds "
                    f"{', '.join(map(str, choice['seeds']))}): {choice['retrain_stopping_accuracy']:.1f} / "
                    f"{choice['continue_stopping_accuracy']:.1f}."
                )
            out.append("")
    for field, key in (("agora_retrain", "retrain_default"), ("agora_self_training", "self_training_default")):
        decision = result.get(key)
        if decision:
            out.append(
                f"`{field}` default, decided on the stopping part pooled over {len(decision['pairs'])} runs: "
                f"{decision['choice']} ({decision['why']}).\n"
            )
    return "\n".join(out)


def main(paths: list[str]) -> int:
    for path in paths:
        result = json.loads(open(path).read())
        print(f"<!-- from {path} -->\n{tables(result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
