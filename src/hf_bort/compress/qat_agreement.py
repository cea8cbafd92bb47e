"""
The dev score of the `qat` stage's checks when it targets agreement (issue 23): the Trainer's `compute_metrics` that,
besides accuracy and macro-F1 of the simulated-int8 predictions, measures their label agreement with the SAME
weights' fp32 predictions — what full dynamic int8's agreement check compares after export.

The simulated-int8 logits are the Trainer's own (its dev batches: simulated, like real, dynamic int8 is
batch-dependent). The fp32 logits come from `plain`, a copy of the student without the simulation that is given the
student's current weights at every check (`load_state_dict`) and run in its own batches (fp32 does not depend on
them). The Trainer's dev order is length-grouped, so each prediction row is matched to its dev row by its input ids
(`include_for_metrics=["inputs"]`): rows with equal input ids have equal fp32 outputs.

`agreement_then_accuracy` = agreement + accuracy / (rows + 1) orders checks by agreement and breaks ties by accuracy
(accuracy / (rows + 1) < 1 / rows, one row of agreement).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

AGREEMENT = "int8_fp32_agreement"
AGREEMENT_THEN_ACCURACY = "agreement_then_accuracy"


def agreement_then_accuracy(agreement: float, accuracy: float, rows: int) -> float:
    """One number ordering (agreement, accuracy) pairs lexicographically for `rows` dev rows."""
    return agreement + accuracy / (rows + 1)


class Int8Fp32Agreement:
    """`compute_metrics` for the `qat` checks. Build it BEFORE the simulation is switched on (it copies `student`)."""

    def __init__(self, student: nn.Module, dev_rows, tokenizer, batch_size: int = 128):
        if tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer has no pad token: dev rows cannot be matched to the Trainer's batches.")
        self.student = student
        self.plain = copy.deepcopy(student).eval()
        for parameter in self.plain.parameters():
            parameter.requires_grad_(False)
        self.dev_rows, self.tokenizer, self.batch_size = dev_rows, tokenizer, batch_size
        self.pad = int(tokenizer.pad_token_id)

    def _fp32_by_input(self) -> dict[tuple[int, ...], int]:
        from ..ose.logits import predict
        from .recipe import _batches

        self.plain.load_state_dict(self.student.state_dict())
        device = next(self.student.parameters()).device
        self.plain.to(device).eval()
        predictions = []
        with torch.no_grad():
            for batch in _batches(self.dev_rows, self.tokenizer, self.batch_size):
                batch.pop("labels", None)
                batch = {key: value.to(device) for key, value in batch.items()}
                predictions.append(predict(self.plain(**batch).logits).cpu())
        predicted = torch.cat(predictions).tolist()
        return {tuple(ids): label for ids, label in zip(self.dev_rows["input_ids"], predicted, strict=True)}

    def _key(self, row: np.ndarray) -> tuple[int, ...]:
        ids = [int(value) for value in row if value != -100]  # -100: the Trainer's padding across batches
        start, end = 0, len(ids)
        while start < end and ids[start] == self.pad:
            start += 1
        while end > start and ids[end - 1] == self.pad:
            end -= 1
        return tuple(ids[start:end])

    def __call__(self, prediction) -> dict[str, float]:
        from ..ose.logits import predict
        from .best_dev import classification_scores

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        int8 = np.asarray(predict(np.asarray(logits)))
        inputs = prediction.inputs
        if inputs is None:
            raise RuntimeError("The Trainer passed no inputs to compute_metrics (include_for_metrics=['inputs']).")
        fp32_by_input = self._fp32_by_input()
        try:
            fp32 = np.asarray([fp32_by_input[self._key(row)] for row in np.asarray(inputs)])
        except KeyError as missing:
            first = list(missing.args[0])[:8]
            raise RuntimeError(f"A dev prediction's input ids match no dev row: {first}...") from None
        scores = classification_scores(int8, np.asarray(prediction.label_ids))
        agreement = float((int8 == fp32).mean())
        return {
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            AGREEMENT: agreement,
            AGREEMENT_THEN_ACCURACY: agreement_then_accuracy(agreement, scores["accuracy"], len(int8)),
        }
