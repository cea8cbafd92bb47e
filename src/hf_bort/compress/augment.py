"""
The `augment` stage of `compress` (text-classification, single texts): Agora's loop with the teacher as labeller,
one round, after task distillation, kept only when it helps on dev (`compress/augment_gate.py`).

1. Errors: training rows where the task-distilled student's prediction differs from the gold label or from the
   teacher's prediction.
2. Candidates: the transfer set (`unlabelled_dataset`) when given; otherwise texts generated from the error rows by
   token substitution (Agora's `TokenSubstitutionSampler`): the source's masked-LM head fills masked tokens when the
   source has one, else the nearest tokens in the teacher's input-embedding space replace them.
3. Choice: Agora v2's selection (`hf_bort.agora.selection.select_near_errors`: candidates near the errors in the
   student's space, the student's uncertainty, k-center diversity, a per-class cap), at most the budget.
4. Labels: the teacher's logits for the chosen rows (one teacher call per row; the calls are the budget). The rows
   join a short continuation of task distillation with soft labels only (KL at the configured temperature; no CE:
   they have no gold label); the task's `augment` method runs it and the gate decides which student is kept.

The chosen rows are saved in `OUTPUT/augment/rows.jsonl` (text, teacher logits) and the round's record in
`OUTPUT/augment/round.json` once the teacher has labelled them, so a resumed run (the stage killed during its
continuation, or the `qat` stage after it) reuses them without calling the teacher again. The continuation starts
from `OUTPUT/augment/task-student/`, a copy of the task student taken once when the stage starts (so a stage killed
after it replaced `OUTPUT/student` starts again from the same weights); the driver deletes that copy once the stage is
recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

AUGMENT_DIR = "augment"
ROWS_NAME = "rows.jsonl"
ROUND_NAME = "round.json"
START_NAME = "task-student"  # the task student, copied when the stage starts: the continuation's starting point
SUBSTITUTION_RATE = 0.15  # share of a text's tokens replaced in a generated candidate
SUBSTITUTION_TOP_K = 8
MAX_SAMPLES_PER_ERROR = 8
SHORTLIST = 3.0  # candidates generated ≈ SHORTLIST × budget (the selection's shortlist)


def source_masked_lm(path: str):
    """(the source's masked LM, why) when the source has a masked-LM head; (None, why not) otherwise."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized" for a source without the head: said in the record instead
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except (ValueError, OSError, KeyError) as error:
        return None, f"no masked-LM head loads from the source ({type(error).__name__})"
    finally:
        hf_logging.set_verbosity(verbosity)
    if info.get("missing_keys"):
        return None, "the source has no masked-LM head"
    return model.eval(), "the source's masked-LM head"


def _rows(dataset) -> list[dict[str, Any]]:
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in dataset.column_names]
    return [{k: torch.tensor(dataset[i][k]) for k in keys} for i in range(len(dataset))]


def _tokenised_rows(texts: list[str], tokenizer, max_length: int) -> list[dict[str, Any]]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [{k: torch.tensor(encoded[k][i]) for k in encoded} for i in range(len(texts))]


def augment(
    student,
    teacher,
    tokenizer,
    train_tokenised,
    train_texts: list[str],
    *,
    budget: int,
    max_length: int,
    seed: int,
    transfer_texts: list[str] | None = None,
    masked_lm=None,
    masked_lm_note: str = "",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """
    One round of Agora's loop with `teacher` as labeller (see the module docstring): returns the chosen rows
    (`text`, `teacher_logits`) and the stage record (teacher calls ≤ `budget`, rows added, how candidates were made).
    """
    from ..agora.samplers import TokenSubstitutionSampler
    from ..agora.selection import select_near_errors, student_view

    pad = tokenizer.pad_token_id or 0
    generator = torch.Generator().manual_seed(seed)
    train_rows = _rows(train_tokenised)
    gold = torch.tensor(train_tokenised["labels"])
    student_probs, student_embeddings = student_view(student, train_rows, pad_token_id=pad)
    teacher_probs, _ = student_view(teacher, train_rows, pad_token_id=pad)
    predicted = student_probs.argmax(-1)
    wrong = predicted != gold
    disagrees = predicted != teacher_probs.argmax(-1)
    errors = (wrong | disagrees).nonzero().flatten().tolist()
    record: dict[str, Any] = {
        "budget": budget,
        "rounds": 1,
        "errors": {
            "rows_checked": len(train_rows),
            "student_wrong": int(wrong.sum()),
            "student_disagrees_with_teacher": int(disagrees.sum()),
            "error_rows": len(errors),
        },
        "teacher_passes_over_train_rows": len(train_rows),  # the teacher's logits on train rows: not budgeted
        "selection": "hf_bort.agora.selection.select_near_errors (near errors, margin uncertainty, k-center, "
        "per-class cap 0.6)",
    }
    if transfer_texts:
        candidate_texts = list(transfer_texts)
        record["candidates_from"] = "transfer set (unlabelled_dataset)"
    else:
        how = "masked-LM fill" if masked_lm is not None else "nearest tokens in the teacher's input-embedding space"
        record["candidates_from"] = (
            f"token substitution of the error rows ({SUBSTITUTION_RATE:.0%} of tokens): {how} ({masked_lm_note})"
        )
        candidate_texts = []
        if errors:
            sampler = TokenSubstitutionSampler(
                SUBSTITUTION_RATE, SUBSTITUTION_TOP_K, tokenizer=tokenizer, masked_lm=masked_lm
            )
            per_error = min(MAX_SAMPLES_PER_ERROR, max(1, math.ceil(SHORTLIST * budget / len(errors))))
            samples = sampler.sample([train_rows[i] for i in errors], teacher, per_error, generator)
            known = set(train_texts)
            for sample in samples:
                text = sample.get("text", "").strip()
                if text and text not in known:
                    known.add(text)
                    candidate_texts.append(text)
    record["candidates_made"] = len(candidate_texts)
    if not errors or not candidate_texts:
        record.update(teacher_calls=0, rows_added=0, why="no errors" if not errors else "no candidates")
        return [], record
    candidate_rows = _tokenised_rows(candidate_texts, tokenizer, max_length)
    candidate_probs, candidate_embeddings = student_view(student, candidate_rows, pad_token_id=pad)
    selection = select_near_errors(
        candidate_embeddings,
        candidate_probs,
        budget,
        error_embeddings=student_embeddings[errors],
        shortlist=SHORTLIST,
        generator=generator,
    )
    chosen = [candidate_rows[i] for i in selection.indices]
    teacher_logits = _logits(teacher, chosen, pad)  # the teacher's calls: one per chosen row
    rows = [
        {"text": candidate_texts[i], "teacher_logits": logits}
        for i, logits in zip(selection.indices, teacher_logits, strict=True)
    ]
    record.update(candidates_scored=selection.candidates, teacher_calls=len(chosen), rows_added=len(rows))
    return rows, record


@torch.no_grad()
def _logits(model, rows: list[dict[str, Any]], pad: int) -> list[list[float]]:
    from ..agora.collator import pad_points

    model.eval()
    out: list[list[float]] = []
    for start in range(0, len(rows), 64):
        batch = pad_points(rows[start : start + 64], pad)
        out += model(**batch).logits.float().tolist()
    return out


def save_rows(out: Path, rows: list[dict[str, Any]]) -> Path:
    folder = out / AUGMENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ROWS_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(row) + "\n" for row in rows))
    temporary.replace(path)
    return path


def save_round(out: Path, rows: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """The labelled rows, then the round's record: the record's presence means the rows are complete."""
    save_rows(out, rows)
    path = out / AUGMENT_DIR / ROUND_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)


def load_round(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """(rows, record) of a round whose teacher calls were made by an earlier call of this run; None when none was."""
    path = out / AUGMENT_DIR / ROUND_NAME
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return load_rows(out, record), record


def start_copy(out: Path) -> Path:
    """`OUTPUT/augment/task-student`: `OUTPUT/student` (the task student) copied once, atomically."""
    import os
    import shutil

    kept = Path(out) / AUGMENT_DIR / START_NAME
    if not kept.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        temporary = kept.with_name(kept.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.copytree(Path(out) / "student", temporary)
        os.replace(temporary, kept)
    return kept


def remove_start_copy(out: Path) -> None:
    """Deletes the copy [`start_copy`] made (the driver calls it once the stage is recorded)."""
    import shutil

    shutil.rmtree(Path(out) / AUGMENT_DIR / START_NAME, ignore_errors=True)


def load_rows(out: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the recorded `augment` stage chose (none when it added none or was skipped)."""
    if not record.get("rows_added"):
        return []
    path = out / AUGMENT_DIR / ROWS_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing, but the recorded `augment` stage added {record['rows_added']} rows: start the run "
            "again (overwrite_output_dir=True)."
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(rows) != record["rows_added"]:
        raise ValueError(f"{path} holds {len(rows)} rows, the `augment` record {record['rows_added']}.")
    return rows
