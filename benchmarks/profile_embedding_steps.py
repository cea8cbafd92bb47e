"""
Where the time of one embedding-distillation step goes (issue 24), on the real model: the packaged all-MiniLM-L6-v2
teacher, a D3-A9-H384-I512-d32 student extracted from it with hf_bort's extraction API (activation importance on 512
training texts; no hidden-state distillation: timing only), batch 32, Rotten Tomatoes training texts (the test split
is not read), `max_length` as `EmbeddingTask` passes it (min(--max-length, the source's max_seq_length)).

For each torch thread count in --threads, interleaved over --rounds rounds:

- `distil_embeddings` itself for --steps steps, with torch's default AdamW ("before", forced by replacing
  `embedding_steps.adamw`) and with the AdamW it now builds (fused) ("after"): seconds per step and their ratio;
- one step taken apart (tokenizer, forward, head, loss, backward, optimizer step with each AdamW);
- the dev evaluation of one epoch (encoding 500 validation texts and `embedding_agreement`).

Other processes share this machine, so compare the ratios of one run, not absolute seconds across runs.

Run: flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src \
    python benchmarks/profile_embedding_steps.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from results_io import timing_cpu_flags, write_result  # noqa: E402

CANDIDATE = "D3-A9-H384-I512-d32"
COMMAND = (
    "flock /tmp/hf_bort_bench.lock nice -n 5 env HF_HUB_OFFLINE=1 PYTHONPATH=src python "
    "benchmarks/profile_embedding_steps.py"
)


def build_student(folder: Path, texts: list[str], tokenizer, max_length: int) -> None:
    """The benchmark's student shape, extracted from the packaged MiniLM, saved as a sentence-transformers folder."""
    from datasets import Dataset

    from hf_bort.assets import packaged_minilm_path
    from hf_bort.compress import embedding_steps, recipe
    from hf_bort.ose.embedding import SentenceEmbeddingHead, load_sentence_transformer
    from hf_bort.ose.extract import load_source_as_bort, save_extracted
    from hf_bort.ose.space import Candidate

    source = str(packaged_minilm_path())
    teacher = load_source_as_bort(source).eval()
    head = SentenceEmbeddingHead.from_model(load_sentence_transformer(source))
    tokenised = recipe.tokenise(Dataset.from_dict({"text": texts[:512]}), tokenizer, max_length, keep_labels=False)
    student, _ = recipe.extract_and_distil(
        teacher, Candidate.from_key(CANDIDATE), tokenised, tokenised, tokenizer, seed=0, distill_epochs=0,
        work_dir=folder / "work", show_progress=False,
    )  # fmt: skip
    save_extracted(student, folder / "student", tokenizer, source=source, card=False)
    embedding_steps.save_head(folder / "student", head.sliced(student.ose_plan.dims, teacher.config.hidden_size))


def load_student(folder: Path):
    from hf_bort.ose.embedding import SentenceEmbeddingHead, load_sentence_transformer

    model = load_sentence_transformer(folder / "student")
    head = SentenceEmbeddingHead.from_model(model)
    for stage in head.stages:  # as EmbeddingTask.train_student
        if type(stage).__name__ == "Dense":
            stage.requires_grad_(True)
    return model[0].auto_model, head


def default_adamw(parameters, learning_rate, device):
    return torch.optim.AdamW(parameters, lr=learning_rate), "AdamW (torch default implementation)"


def time_distil(folder, texts, teacher, tokenizer, max_length, steps, fused: bool) -> float:
    """Seconds per step of `distil_embeddings` over `steps` steps (dev scoring on 5 texts: timed separately)."""
    from hf_bort.compress import embedding_steps

    encoder, head = load_student(folder)
    original = embedding_steps.adamw
    if not fused:
        embedding_steps.adamw = default_adamw
    try:
        rows = texts[: steps * 32]
        record = embedding_steps.distil_embeddings(
            encoder, head, teacher[: len(rows)], rows, tokenizer, epochs=1.0, learning_rate=5e-5, batch_size=32,
            max_length=max_length, seed=0, dev_texts=rows[:5], dev_teacher=teacher[:5], show_progress=False,
        )  # fmt: skip
    finally:
        embedding_steps.adamw = original
    expected = "AdamW (fused)" if fused else "AdamW (torch default implementation)"
    if record["optimizer"] != expected or record["steps"] != steps:
        raise RuntimeError(f"unexpected run: {record['optimizer']}, {record['steps']} steps")
    return record["wall_s"] / steps


def step_parts(folder, texts, teacher, tokenizer, max_length, steps) -> dict[str, float]:
    """Mean seconds of each piece of a training step (the loop of `distil_embeddings`, taken apart)."""
    from hf_bort.ose.embedding import embedding_loss

    encoder, head = load_student(folder)
    parameters = [p for p in encoder.parameters() if p.requires_grad]
    optimizers = {
        "optimizer_default": torch.optim.AdamW(parameters, lr=5e-5),
        "optimizer_fused": torch.optim.AdamW(parameters, lr=5e-5, fused=True),
    }
    encoder.train()
    totals: dict[str, float] = {}
    for index in range(steps + 1):  # the first step warms up
        rows = list(range(index * 32, (index + 1) * 32))
        clock = [time.perf_counter()]
        batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")  # fmt: skip
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        clock.append(time.perf_counter())
        hidden = encoder(**inputs).last_hidden_state
        clock.append(time.perf_counter())
        embeddings = head(hidden, inputs["attention_mask"])
        clock.append(time.perf_counter())
        loss = embedding_loss(embeddings, teacher[rows])
        clock.append(time.perf_counter())
        loss.backward()
        clock.append(time.perf_counter())
        for optimizer in optimizers.values():
            optimizer.step()
            clock.append(time.perf_counter())
        encoder.zero_grad(set_to_none=True)
        if index:
            names = ["tokenizer", "forward", "head", "loss", "backward", *optimizers]
            for name, start, end in zip(names, clock[:-1], clock[1:], strict=True):
                totals[name] = totals.get(name, 0.0) + (end - start) / steps
    return {name: round(value, 4) for name, value in totals.items()}


def main(argv: list[str] | None = None) -> None:
    from hf_bort.assets import load_rotten_tomatoes, packaged_minilm_path
    from hf_bort.compress import embedding_steps
    from hf_bort.compress.checks import source_tokenizer
    from hf_bort.measure import machine_info
    from hf_bort.models.sentence_transformers_folder import transformer_source
    from hf_bort.ose.embedding import SentenceEmbeddingHead, embedding_agreement, load_sentence_transformer
    from hf_bort.ose.extract import load_source_as_bort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to time, comma-separated")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64, help="as compress_embeddings.py")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    source = str(packaged_minilm_path())
    tokenizer = source_tokenizer(transformer_source(source))
    teacher_st = load_sentence_transformer(source)
    max_length = min(args.max_length, teacher_st.max_seq_length or args.max_length)  # as EmbeddingTask.load
    splits = load_rotten_tomatoes(seed=0)
    texts, dev = list(splits["train"]["text"]), list(splits["validation"]["text"])
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    teacher_model = load_source_as_bort(source).eval()
    teacher_head = SentenceEmbeddingHead.from_model(teacher_st)
    needed = texts[: (args.steps + 1) * 32]
    teacher = embedding_steps.encode(teacher_model, teacher_head, tokenizer, needed, max_length)
    dev_teacher = embedding_steps.encode(teacher_model, teacher_head, tokenizer, dev, max_length)
    out: dict = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "student": CANDIDATE,
        "batch_size": 32,
        "max_length_passed": max_length,
        "source_max_seq_length": teacher_st.max_seq_length,
        "train_token_lengths": {
            "texts": len(lengths),
            "max": max(lengths),
            "mean": round(sum(lengths) / len(lengths), 2),
            "over_max_length": sum(n > max_length for n in lengths),
        },
        "torch": torch.__version__,
        "cpu_flags": timing_cpu_flags(),
        "machine": machine_info(),
        "load_average_at_start": os.getloadavg(),
        "by_threads": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_student(folder, texts, tokenizer, max_length)
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            runs: dict[str, list[float]] = {"before_default_adamw": [], "after_fused_adamw": []}
            for _ in range(args.rounds):
                for name, fused in (("before_default_adamw", False), ("after_fused_adamw", True)):
                    seconds = time_distil(folder, texts, teacher, tokenizer, max_length, args.steps, fused)
                    runs[name].append(round(seconds, 4))
                    print(threads, name, round(seconds, 3), flush=True)
            encoder, head = load_student(folder)
            start = time.perf_counter()
            embedding_agreement(embedding_steps.encode(encoder, head, tokenizer, dev, max_length), dev_teacher)
            dev_s = time.perf_counter() - start
            before, after = min(runs["before_default_adamw"]), min(runs["after_fused_adamw"])
            out["by_threads"][str(threads)] = {
                "seconds_per_step": runs,
                "speedup_fused_over_default_best_of_rounds": round(before / after, 3),
                "step_parts_seconds": step_parts(folder, texts, teacher, tokenizer, max_length, args.steps),
                "dev_evaluation_seconds_500_texts": round(dev_s, 3),
                "dev_evaluation_in_steps_of_fused": round(dev_s / after, 2),
            }
    out["load_average_at_end"] = os.getloadavg()
    write_result(f"profile_embedding_steps{('_' + args.tag) if args.tag else ''}", out)


if __name__ == "__main__":
    main()
