"""
`EmbeddingTask` (`task="feature-extraction"`): a sentence-transformers source folder and texts without labels.

- `source` — the teacher: the source `SentenceTransformer`, its encoder as Bort and its modules after the encoder
  (pooling, `Dense`, `Normalize`) as a frozen [`SentenceEmbeddingHead`]; checked to reproduce
  `SentenceTransformer.encode` within 1e-5.
- `search` — OSE with the `"embedding"` objective: each candidate is trained for bounded steps on the cosine
  distance of its sentence embeddings to the teacher's; ê is that distance on dev texts.
- `distill` — extraction of the chosen shape, hidden-state distillation; saved as a sentence-transformers folder
  (pooling width and `Dense` follow the kept dims).
- `task` — embedding distillation: the student's encoder is trained so that its sentence embeddings (through the
  frozen head) match the teacher's, loss 1 − cos (`embedding_loss="cosine+similarity"` adds the in-batch
  similarity-matrix term), scored on dev (`spearman_pairwise`) after every epoch, the best
  epoch kept, early stopping after `embedding_patience` epochs (`embedding_min_steps`, `embedding_max_epochs`); the
  student is saved in `OUTPUT/student/`.
- `reload` — `SentenceTransformer(OUTPUT/student, trust_remote_code=True)` in a fresh process without hf_bort gives
  the same embeddings.
- `test` — agreement on the test texts: mean cosine, nearest-neighbour agreement, Spearman of the pairwise
  similarities (read once, at the end).

The model card's library is `sentence-transformers`, with the agreement metrics in its `model-index`.
"""

from __future__ import annotations

import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

from .. import embedding_steps, recipe
from ..checks import source_kind, source_tokenizer
from ..config import CompressionConfig


class EmbeddingTask:
    """The [`CompressionTask`] of sentence-embedding models (see the module docstring)."""

    name = "feature-extraction"
    task_stage_label = "embeddings"
    search_picks = False

    def __init__(self, config: CompressionConfig):
        if config.task != self.name:
            raise ValueError(f"compress_embeddings needs task='feature-extraction', got {config.task!r}.")
        self.config = config

    # -------------------------------------------------------------------------------------------------- 1. data
    def load(self):
        from ...data import load_text_data, load_transfer_texts
        from ...models.sentence_transformers_folder import transformer_source
        from ...ose.embedding import load_sentence_transformer

        config = self.config
        self.source_config, _ = source_kind(config.model)
        self.encoder_path = transformer_source(config.model)
        self.tokenizer = source_tokenizer(self.encoder_path)
        self.teacher_st = load_sentence_transformer(config.model)  # refuses a folder without modules.json
        self.data = load_text_data(config)
        self.transfer_record = load_transfer_texts(config, self.data)  # the transfer set, checked before any work
        self.transfer_texts = list(self.data.transfer["text"]) if self.data.transfer is not None else []
        self.max_length = min(config.max_length, self.teacher_st.max_seq_length or config.max_length)
        self.train_texts, self.dev_texts = list(self.data.train["text"]), list(self.data.validation["text"])
        return self.source_config

    def data_record(self) -> dict[str, Any]:
        data = self.data
        return {
            "validation_carved": data.validation_carved,
            "examples": list(data.validation["text"][:3]),  # the card's widget (issue 22)
            "notes": data.notes,
            "task": self.config.task,
            **({"transfer": self.transfer_record} if self.transfer_record else {}),
        }

    def _encode(self, encoder, head, texts: list[str], max_length: int | None = None):
        return embedding_steps.encode(encoder, head, self.tokenizer, texts, max_length or self.max_length)

    # ----------------------------------------------------------------------------------------- 2. source / head
    @cached_property
    def _teacher_and_head(self):
        from ...ose.embedding import SentenceEmbeddingHead
        from ...ose.extract import load_source_as_bort

        return load_source_as_bort(self.config.model).eval(), SentenceEmbeddingHead.from_model(self.teacher_st)

    def teacher_stage(self, out: Path) -> dict[str, Any]:
        teacher, head = self._teacher_and_head
        sample = self.dev_texts[:16]
        reference = self.teacher_st.encode(sample, convert_to_tensor=True, batch_size=16)
        # the reference is encode()'s own max_seq_length; compare at that length
        mine = self._encode(teacher, head, sample, self.teacher_st.max_seq_length or self.max_length)
        difference = float((mine - reference).abs().max())
        if difference > 1e-5:
            raise RuntimeError(
                f"The Bort teacher with the source's pooling head differs from SentenceTransformer.encode by "
                f"{difference:.3g}: the embedding pipeline is not reproduced."
            )
        return {
            "path": str(self.config.model),
            "modules": [type(m).__name__ for m in self.teacher_st.children()],
            "embedding_dimension": int(reference.shape[-1]),
            "head_check_max_abs_difference": difference,
        }

    def load_teacher(self, out: Path, record: dict[str, Any]) -> None:
        self.teacher, self.head = self._teacher_and_head
        self.dev_teacher = self._encode(self.teacher, self.head, self.dev_texts)

    # ------------------------------------------------------------------------------------------------ 3. search
    def ose_search(self, space, settings):
        from ...ose.search import OSESearch

        data = self.data
        return OSESearch(
            self.teacher,
            space,
            settings,
            tokenizer=self.tokenizer,
            text_dataset=data.train,
            eval_dataset=data.validation.select(range(min(self.config.search_eval_rows, len(self.dev_texts)))),
            objective="embedding",
            embedding_head=self.head,
            max_length=self.max_length,
        )

    # ------------------------------------------------------------------------ 4. distill, 5. embedding training
    def distil(self, candidate, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
        from datasets import Dataset

        from ...ose.extract import save_extracted

        texts = Dataset.from_dict({"text": self.train_texts + self.transfer_texts})  # the transfer set joins
        tokenised = {
            name: recipe.tokenise(split, self.tokenizer, self.max_length, keep_labels=False)
            for name, split in (("train", texts), ("validation", self.data.validation))
        }
        student, record = recipe.extract_and_distil(
            self.teacher, candidate, tokenised["train"], tokenised["validation"], self.tokenizer, **settings
        )
        distilled_dir = out / "student-distilled"
        if distilled_dir.exists():
            shutil.rmtree(distilled_dir)
        # intermediate: no card
        save_extracted(student, distilled_dir, self.tokenizer, source=self.config.model, card=False)
        student_head = self.head.sliced(student.ose_plan.dims, self.teacher.config.hidden_size)
        # the head's Dense stages; a projection back to the teacher's width when the student is narrower
        embedding_steps.save_head(distilled_dir, student_head)
        record["head"] = [type(stage).__name__ for stage in student_head.stages]
        record["texts"] = {"train": len(self.train_texts), "transfer": len(self.transfer_texts)}
        return record

    def augment(self, out: Path, task_record: dict[str, Any]) -> dict[str, Any]:
        """Stage `augment`: skipped, with the reason (`augment="always"` is refused here before any work)."""
        from ..config_checks import augmentation_unavailable

        why = "augment='off'" if self.config.augment == "off" else augmentation_unavailable(self.config)
        return {"skipped": why, "mode": self.config.augment, "teacher_calls": 0, "rows_added": 0}

    def train_student(self, out: Path) -> dict[str, Any]:
        from ...models.sentence_transformers_folder import transformer_source
        from ...ose.embedding import SentenceEmbeddingHead, embedding_agreement, load_sentence_transformer

        config = self.config
        distilled_dir, student_dir = out / "student-distilled", out / "student"
        student_st = load_sentence_transformer(distilled_dir)
        student_head = SentenceEmbeddingHead.from_model(student_st)
        for stage in student_head.stages:  # the (sliced or added) Dense layers train with the encoder
            if type(stage).__name__ == "Dense":
                stage.requires_grad_(True)
        encoder = student_st[0].auto_model
        texts = self.train_texts + self.transfer_texts  # the transfer set joins the distillation texts
        teacher_train = self._encode(self.teacher, self.head, texts)
        before = embedding_agreement(self._encode(encoder, student_head, self.dev_texts), self.dev_teacher)
        training = embedding_steps.distil_embeddings(
            encoder,
            student_head,
            teacher_train,
            texts,
            self.tokenizer,
            epochs=config.task_epochs,
            learning_rate=config.task_learning_rate,
            batch_size=config.batch_size,
            max_length=self.max_length,
            seed=config.seed,
            dev_texts=self.dev_texts,  # scored every epoch; the best epoch's weights are kept
            dev_teacher=self.dev_teacher,
            min_steps=config.embedding_min_steps,
            patience=config.embedding_patience,
            max_epochs=config.embedding_max_epochs,
            loss=config.embedding_loss,
            similarity_weight=config.embedding_similarity_weight,
            show_progress=config.show_progress,
        )
        if student_dir.exists():
            shutil.rmtree(student_dir)
        shutil.copytree(distilled_dir, student_dir)
        encoder.save_pretrained(transformer_source(student_dir))
        embedding_steps.save_head(student_dir, student_head)
        after = embedding_agreement(self._encode(encoder, student_head, self.dev_texts), self.dev_teacher)
        training["texts"] = {"train": len(self.train_texts), "transfer": len(self.transfer_texts)}
        return {"training": training, "dev_before": before, "dev": after}

    def quantization_aware(self, out: Path) -> dict[str, Any]:
        raise ValueError(  # CompressionConfig refuses qat_steps > 0 for this task before any work
            "`qat_steps` > 0 needs task='text-classification': the quantization-aware stage is not supported for "
            "task='feature-extraction'."
        )

    def load_student(self, out: Path) -> None:
        from ...ose.embedding import SentenceEmbeddingHead, load_sentence_transformer

        self.student_st = load_sentence_transformer(out / "student")
        self.encoder = self.student_st[0].auto_model.eval()
        self.student_head = SentenceEmbeddingHead.from_model(self.student_st)
        self.student_config = self.encoder.config

    # ---------------------------------------------------------------------------------- 6-8. checks and the test
    def reload_check(self, out: Path) -> dict[str, Any]:
        texts = self.dev_texts[:16]
        expected = self.student_st.encode(texts, convert_to_tensor=True)
        record = embedding_steps.reload_check(out / "student", expected, texts)
        if not record["ok"]:
            raise RuntimeError(f"The saved student does not reload with the same embeddings: {record}")
        return record

    def latency_models(self) -> dict[str, Any]:
        from transformers import AutoModel

        return {"source": AutoModel.from_pretrained(self.encoder_path).eval(), "student": self.encoder}

    def latency_options(self) -> dict[str, Any]:
        return {}

    def test_record(self) -> dict[str, Any]:
        from ...ose.embedding import embedding_agreement

        texts = list(self.data.test["text"])
        return {
            "student": embedding_agreement(
                self._encode(self.encoder, self.student_head, texts), self._encode(self.teacher, self.head, texts)
            )
        }

    # ------------------------------------------------------------------------------------------------- report
    def report(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "source": {
                "path": str(self.config.model),
                "model_type": self.source_config.model_type,
                **records["source"],
            },
            "student": {
                "embedding_distillation": records["task"]["training"],
                "dev_before_embedding_distillation": records["task"]["dev_before"],
                "dev": records["task"]["dev"],
                "test": records["test"].get("student"),
            },
        }
