"""
`PairClassificationTask` (`text_pair_column` set): sequence classification of text pairs — NLI, paraphrase,
question pairs, the cross-encoders most served on CPUs. The stages are [`ClassificationTask`]'s; only its input
hooks differ: every split has a `text_pair` column and is tokenised as (text, text_pair), so the teacher's
fine-tuning and evaluation, the search's candidate training and ê, hidden-state and task distillation, the reload
check, the latency inputs and the ONNX export's validation all see pairs. The report and the model card record the
pair column; the card shows how to feed a pair.

Single-output cross-encoders (`num_labels=1`: rerankers such as the ms-marco MiniLM cross-encoders, a relevance
logit read through a sigmoid) are compressed when the source is the fine-tuned reranker itself and the labels are
binary relevance 0 / 1 (`compress/relevance.py`, other labels are refused naming `label_column`): the logit is read
as a Bernoulli everywhere the recipe reads a softmax (BCE + binary KL, `logit > 0` as the prediction:
`ose/logits.py`), and the student keeps the single output and the source's `id2label`. A pretrained encoder is
fine-tuned as a 2-class classifier instead; it does not become a single-output reranker.
"""

from __future__ import annotations

from typing import Any

from .. import recipe
from .classification import ClassificationTask

PAIR = "text_pair"  # the second text's column in `TaskData` splits


class PairClassificationTask(ClassificationTask):
    """The [`CompressionTask`] of text-pair classifiers (see the module docstring)."""

    def load(self):
        if self.config.text_pair_column is None:
            raise ValueError("PairClassificationTask needs `text_pair_column` (the second text's column).")
        return super().load()

    def tokenise(self, split):
        return recipe.tokenise(split, self.tokenizer, self.config.max_length, pair_column=PAIR)

    def examples(self, split, count: int) -> list[Any]:
        return [[a, b] for a, b in zip(split["text"][:count], split[PAIR][:count], strict=True)]

    def search_settings(self) -> dict[str, Any]:
        return {"text_pair_column": PAIR}

    def latency_options(self) -> dict[str, Any]:
        examples = self.examples(self.data.validation, 16)
        return {"validation_texts": (examples * 3)[: max(3, len(examples))]}  # the exporter needs three

    def data_record(self) -> dict[str, Any]:
        return {**super().data_record(), "text_pair_column": self.config.text_pair_column}

    def report(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            **super().report(records),
            "inputs": {"text_column": self.config.text_column, "text_pair_column": self.config.text_pair_column},
        }
