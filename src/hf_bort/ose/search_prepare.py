"""
Preparation of an [`OSESearch`] before any candidate is trained: the source loaded as Bort (or refused), the objective
resolved and checked against the source, batches built, importance scored, the candidate trainer set up and the run id
computed from everything that changes results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import torch

from ..models.bort.configuration_bort import BortConfig
from ..models.bort.convert import SUPPORTED_MODEL_TYPES
from ..models.bort.modeling_bort import (
    BortForMaskedLM,
    BortForSequenceClassification,
    BortModel,
    BortPreTrainedModel,
)
from ..models.sentence_transformers_folder import transformer_source
from .extract import generic_bort_config, load_source_as_bort
from .importance import compute_importance
from .logits import label_classes
from .surrogate import CandidateTrainer

logger = logging.getLogger(__name__)


class SearchPreparation:
    """The preparation side of [`hf_bort.ose.search.OSESearch`] (a base class of it; reads the search's settings)."""

    def _prepare(self) -> None:
        if self._prepared:
            return
        from transformers import AutoModel, AutoTokenizer

        source = self.source
        if self.tokenizer is None:
            if not isinstance(source, (str, os.PathLike)):
                raise ValueError("`tokenizer` is required when `source` is a model instance rather than a path.")
            self.tokenizer = AutoTokenizer.from_pretrained(transformer_source(source))
        bort = load_source_as_bort(source)
        if bort is None:
            is_path = isinstance(source, (str, os.PathLike))
            teacher = AutoModel.from_pretrained(transformer_source(source)) if is_path else source
            model_type = teacher.config.model_type
            if not self.allow_random_init:
                raise ValueError(
                    f"No weight mapping from {model_type!r} to Bort (supported: {', '.join(SUPPORTED_MODEL_TYPES)}): "
                    "the candidates would start from random weights, which is not extraction. Convert the source to "
                    "a supported type, or pass allow_random_init=True (CLI: --allow-random-init) to search randomly "
                    "initialised candidates on purpose."
                )
            logger.warning(
                "allow_random_init: every candidate of this search starts from random weights (no mapping from %r).",
                model_type,
            )
            self.base_config = generic_bort_config(teacher.config)
            self.teacher, self.bort = teacher.eval(), None
        else:
            self.bort = bort.eval()
            self.teacher = self.bort
            self.base_config = self.bort.config
        self.objective = self._resolve_objective()
        if self.bort is not None:
            head = self.base_config.attention_head_size
            bad = [c.key for c in self.space if c.head_size != head]
            if bad:
                raise ValueError(
                    f"`space` has {len(bad)} candidates (e.g. {bad[0]}) whose head size differs from the source's "
                    f"attention head width {head}: weights cannot be inherited (use SearchSpace.from_source)."
                )
        self.base_config = BortConfig.from_dict(
            {**self.base_config.to_dict(), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        )
        limit = _max_positions(self.base_config)
        if self.cost == "latency_ms" and limit is not None and self.sequence_length > limit:
            raise ValueError(
                f"`sequence_length` {self.sequence_length} (the length latency is timed at) is longer than the source "
                f"allows ({limit} positions): pass sequence_length <= {limit} (CLI: --sequence-length; compress: "
                "cost_sequence_length)."
            )
        self._build_batches()
        if self.bort is not None:
            calibration = self.train_batches[: self.calibration_batches]
            self.importance = compute_importance(
                self.bort,
                calibration,
                method=self.importance_method,
                mask_token_id=self.tokenizer.mask_token_id,
                seed=self.seed,
            )
        else:
            self.importance = None
        if self.bort is None:  # no Bort twin of the teacher: its hidden-state targets are computed here, once
            with torch.no_grad():
                for batch in (*self.eval_batches, *self.train_batches):
                    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                    batch["target"] = self.teacher(**inputs, output_hidden_states=True).hidden_states[-1]
        self.trainer = CandidateTrainer(
            self.teacher,
            self.objective,
            self.train_batches,
            self.eval_batches,
            learning_rate=self.learning_rate,
            freeze_embeddings=self.freeze_embeddings,
            temperature=self.temperature,
            alpha_ce=self.alpha_ce,
            alpha_kd=self.alpha_kd,
            embedding_head=self.embedding_head,
            gold_weight=self.config.gold_weight,
        )
        self.run_id = self._run_id()
        self._prepared = True

    def _resolve_objective(self) -> str:
        is_classifier = isinstance(self.bort, BortForSequenceClassification)
        has_mlm = isinstance(self.bort, BortForMaskedLM)
        wanted = self.requested_objective
        if wanted == "auto":
            wanted = "task" if self.task_rows is not None else "mlm" if has_mlm else "hidden"
        if wanted == "task":
            if self.task_rows is None:
                raise ValueError("objective='task' needs `task_dataset` and `eval_dataset`.")
            if not is_classifier:
                found = "no weight mapping" if self.bort is None else type(self.bort).__name__
                raise ValueError(
                    "The task objective needs a fine-tuned sequence classifier as the source (its logits are the "
                    f"teacher's), got {found}. Fine-tune the source first (hf_bort.compress does) or search with "
                    "objective='hidden'."
                )
            labels = {label for _, label in (*self.task_rows, *self.eval_rows)}
            num_labels = label_classes(self.bort.config.num_labels)  # 0 / 1 for a single output (a reranker)
            bad = sorted(label for label in labels if not 0 <= label < num_labels)
            if bad:
                raise ValueError(
                    f"Labels {bad[:5]} do not fit the source classifier's {num_labels} labels "
                    f"(ids 0..{num_labels - 1})."
                )
        if wanted == "embedding" and self.bort is None:
            raise ValueError("objective='embedding' needs a source with a weight mapping to Bort.")
        if wanted == "mlm" and not has_mlm:
            raise ValueError("objective='mlm' needs a source with an MLM head (e.g. *ForMaskedLM).")
        return wanted

    def _student_class(self) -> type[BortPreTrainedModel]:
        if self.objective == "task":
            return BortForSequenceClassification
        if self.objective == "mlm":
            return BortForMaskedLM
        return BortModel

    def _run_id(self) -> str:
        """The settings that change results (`OSEConfig.run_id_settings`), the source and data, what they resolve."""
        settings = {
            **self.config.run_id_settings(),
            "source": str(self.source) if isinstance(self.source, (str, os.PathLike)) else type(self.source).__name__,
            "source_config": self.base_config.to_json_string(use_diff=False),
            "texts": self.text_fingerprint.hexdigest(),
            "objective": self.objective,
            "eval_batch_size": self.eval_batch_size,
            "num_train_batches": len(self.train_batches),
            "latency": [self.latency_engine, self.latency_batch_size] if self.cost == "latency_ms" else None,
        }
        if self.config.gold_weight > 0:
            settings["gold_weight"] = self.config.gold_weight
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _max_positions(config: BortConfig) -> int | None:
    """Longest input the source's position table allows (None: no absolute positions)."""
    kind = getattr(config, "position_embedding_type", "absolute")
    if kind not in ("absolute", "roberta"):
        return None
    positions = config.max_position_embeddings
    return positions - ((config.pad_token_id or 0) + 1) if kind == "roberta" else positions
