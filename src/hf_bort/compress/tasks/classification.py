"""
`ClassificationTask` (`task="text-classification"`): a pretrained encoder (fine-tuned here on the labelled data)
or a fine-tuned `*ForSequenceClassification` as the teacher; OSE with the task objective (dev KL to the teacher's
logits, dev accuracy); task distillation (CE + T²·KL); the student reloads with plain transformers with the same
logits; accuracy and macro-F1 of source and student on dev and, once, on test.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

from ...data import TaskData, load_task_data, load_transfer_texts
from .. import quality, recipe
from ..best_dev import epochs_for
from ..checks import load_source_classifier, source_kind, source_tokenizer
from ..config import CompressionConfig
from ..relevance import binary_relevance_data

logger = logging.getLogger(__name__)

SINGLE_OUTPUT_NO_AUGMENT = (
    "augmentation reads class probabilities (errors, the selection's margins), not a single-output source's one "
    "relevance logit"
)


def task_stopping(training: dict[str, Any], config: CompressionConfig) -> dict[str, Any]:
    """What the `task` stage planned and why it stopped (`recipe.finetune`'s record, the `task_*` settings)."""
    patience = config.task_patience
    stopped = "patience" if training["stopped_early"] else "max_epochs" if patience else "min_epochs"
    reasons = {
        "min_epochs": "task_patience 0: trained exactly task_epochs",
        "max_epochs": "reached task_max_epochs",
        "patience": f"{patience} epoch(s) in a row after task_epochs without a better dev "
        f"{config.best_checkpoint_metric}",
    }
    return {
        "min_epochs": config.task_epochs,
        "max_epochs": config.task_max_epochs if patience else config.task_epochs,
        "patience": patience,
        "planned_epochs": training["epochs"],
        "epochs": training["dev_per_epoch"][-1]["epoch"],  # trained (the card's)
        "learning_rate_decay": f"linear to 0 over {training['epochs']} epochs "
        f"({'task_max_epochs' if patience else 'task_epochs'})",
        "stopped": stopped,
        "stopped_why": reasons[stopped],
    }


class ClassificationTask:
    """The [`CompressionTask`] of sequence classifiers (see the module docstring)."""

    name = "text-classification"
    task_stage_label = "task"
    search_picks = True

    def __init__(self, config: CompressionConfig):
        self.config = config

    # -------------------------------------------------------------------------------------------------- 1. data
    def load(self):
        config = self.config
        self.source_config, self.is_classifier = source_kind(config.model)
        self.tokenizer = source_tokenizer(config.model)
        # a classifier source is loaded once: its head checked now, then the teacher
        self.source_classifier = load_source_classifier(config.model, "model") if self.is_classifier else None
        label2id = dict(self.source_config.label2id) if self.is_classifier else None
        self.single_output = self.is_classifier and self.source_config.num_labels == 1
        if self.single_output:  # a reranker: one relevance logit, binary labels 0 / 1 (`ose/logits.py`)
            if config.augment == "always":
                raise ValueError(f"`augment`='always' cannot run: {SINGLE_OUTPUT_NO_AUGMENT}. Use augment='off'.")
            self.data = binary_relevance_data(config)
        else:
            self.data: TaskData = load_task_data(
                config,
                model_label2id=label2id,
                model_num_labels=self.source_config.num_labels if self.is_classifier else None,
            )
        self.transfer_record = load_transfer_texts(config, self.data)  # the transfer set, checked before any work
        self.qat_simulation = None
        if config.qat_steps:  # the int8 the `qat` stage simulates: this CPU's target, told before any work
            from ...exporters.int8_config import detect_quantization_target
            from ..qat import DynamicInt8Simulation

            self.qat_simulation = DynamicInt8Simulation.for_target(detect_quantization_target())
        return self.source_config

    def data_record(self) -> dict[str, Any]:
        data = self.data
        return {
            "num_labels": data.num_labels,
            **({"single_output": True} if self.single_output else {}),
            "label_names": data.label_names,
            "examples": self.examples(data.validation, 3),  # the card's widget (issue 22)
            "validation_carved": data.validation_carved,
            "notes": data.notes,
            "source_is_finetuned_classifier": self.is_classifier,
            **({"transfer": self.transfer_record} if self.transfer_record else {}),
        }

    # The hooks a kind of input changes (text pairs: `PairClassificationTask`); every stage goes through them.
    def tokenise(self, split):
        """A split of `self.data` as model inputs with `labels` (the teacher's, the search's and every training's)."""
        return recipe.tokenise(split, self.tokenizer, self.config.max_length)

    def examples(self, split, count: int) -> list[Any]:
        """The first `count` inputs of `split` as the tokenizer takes them (reload check, card, ONNX validation)."""
        return list(split["text"][:count])

    def search_settings(self) -> dict[str, Any]:
        """`OSEConfig` settings the task's inputs add to the search's."""
        return {}

    def latency_options(self) -> dict[str, Any]:
        """`latency.measure_latency` keywords the task's inputs add (stage `latency`)."""
        return {}

    @cached_property
    def tokenised(self) -> dict[str, Any]:
        data = self.data
        out = {
            name: self.tokenise(split)
            for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test))
            if split is not None
        }
        if data.transfer is not None:  # texts only: no gold label (-100 where labels are needed)
            out["transfer"] = recipe.tokenise(data.transfer, self.tokenizer, self.config.max_length, keep_labels=False)
        return out

    def _distillation_rows(self, extra_texts: list[str] = ()):
        """Tokenised train rows, then the transfer set's and `extra_texts` with label -100 (KL only)."""
        from datasets import Dataset, concatenate_datasets

        parts = [self.tokenised["train"]]
        unlabelled = [self.tokenised["transfer"]] if "transfer" in self.tokenised else []
        if extra_texts:
            texts = Dataset.from_dict({"text": list(extra_texts)})
            unlabelled.append(recipe.tokenise(texts, self.tokenizer, self.config.max_length, keep_labels=False))
        for part in unlabelled:
            parts.append(part.add_column("labels", [-100] * len(part)).cast(parts[0].features))
        return concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------------------------------------ 2. source
    def teacher_stage(self, out: Path) -> dict[str, Any]:
        config, data = self.config, self.data
        if self.is_classifier:
            teacher_model = self.source_classifier.eval()
            record: dict[str, Any] = {"finetuned": False, "path": str(config.model)}
        else:
            teacher_model = recipe.classifier_from_encoder(config.model, data.label_names, config.seed)
            source_dir = out / "source-finetuned"
            epochs = epochs_for(config.finetune_epochs, config.finetune_min_steps, len(data.train), config.batch_size)
            training = recipe.finetune(  # evaluated on dev every epoch: the best epoch is the teacher
                teacher_model,
                self.tokenised["train"],
                self.tokenizer,
                epochs=epochs,
                learning_rate=config.finetune_learning_rate,
                batch_size=config.batch_size,
                seed=config.seed,
                work_dir=out / "tmp-trainer",
                show_progress=config.show_progress,
                eval_dataset=self.tokenised["validation"],
                best_metric=config.best_checkpoint_metric,
                patience=config.finetune_patience or None,
                patience_after_epochs=config.finetune_epochs,  # the epochs asked for always run
            )
            training["min_steps"] = config.finetune_min_steps
            teacher_model.save_pretrained(source_dir)
            self.tokenizer.save_pretrained(source_dir)
            record = {"finetuned": True, "path": str(source_dir), "training": training}
        record["dev"] = recipe.evaluate(teacher_model, self.tokenised["validation"], self.tokenizer)
        baseline = quality.majority_baseline(list(data.train["label"]), list(data.validation["label"]))
        record.update(quality.teacher_verdict(record["dev"], baseline, config.weak_teacher_margin))
        return record

    def load_teacher(self, out: Path, record: dict[str, Any]) -> None:
        from ...models.bort.convert import convert_to_bort

        # this run's folder, however it is spelt now (the record holds the spelling of the call that fine-tuned)
        self.source_path = str(out / "source-finetuned") if record["finetuned"] else record["path"]
        if self.source_classifier is None:  # fine-tuned here (a classifier source was loaded and checked in `load`)
            self.source_classifier = load_source_classifier(self.source_path, "source-finetuned")
        self.teacher_model = self.source_classifier.eval()
        self.teacher = convert_to_bort(self.teacher_model).eval()  # same outputs, Bort parameter names
        self.source_record = record
        # a weak teacher is an error here, before the search (on every call), unless allowed: then a warning
        self.teacher_warning = quality.check_teacher(record, self.config.allow_weak_teacher)

    # ------------------------------------------------------------------------------------------------ 3. search
    def ose_search(self, space, settings):
        from ...ose.search import OSESearch

        config, data = self.config, self.data
        return OSESearch(
            self.teacher,
            space,
            settings,
            gold_weight=quality.gold_weight(config, bool(self.source_record.get("weak"))),
            tokenizer=self.tokenizer,
            task_dataset=data.train,
            eval_dataset=data.validation.select(range(min(config.search_eval_rows, len(data.validation)))),
            objective="task",
            temperature=config.temperature,
            alpha_ce=config.alpha_ce,
            alpha_kd=config.alpha_kd,
            max_length=config.max_length,
            **self.search_settings(),
        )

    # ------------------------------------------------------------------------------ 4. distill, 5. task training
    def distil(self, candidate, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
        from ...ose.extract import save_extracted

        texts = self._distillation_rows()  # train + transfer texts (labels unused)
        student, record = recipe.extract_and_distil(
            self.teacher,
            candidate,
            texts,
            self.tokenised["validation"],
            self.tokenizer,
            **settings,
        )
        save_extracted(student, out / "student-distilled", self.tokenizer, card=False)  # intermediate: no card
        record["texts"] = {
            "train": len(self.tokenised["train"]),
            "transfer": len(texts) - len(self.tokenised["train"]),
        }
        return record

    def train_student(self, out: Path) -> dict[str, Any]:
        from transformers import AutoModelForSequenceClassification

        from ...ose.extract import save_extracted

        config = self.config
        student = AutoModelForSequenceClassification.from_pretrained(out / "student-distilled")
        rows = self._distillation_rows()
        patience = config.task_patience
        training = recipe.finetune(  # with patience: up to task_max_epochs (the decay over them), task_epochs at least
            student,
            rows,
            self.tokenizer,
            epochs=config.task_max_epochs if patience else config.task_epochs,
            learning_rate=config.task_learning_rate,
            teacher=self.teacher,
            eval_dataset=self.tokenised["validation"],  # the best dev epoch is the student
            patience=patience or None,
            patience_after_epochs=config.task_epochs,
            cache_teacher_logits=True,  # the teacher runs once over the rows, not once per epoch
            **self._distillation_settings(out),
        )
        training.update(task_stopping(training, config))
        save_extracted(student, out / "student", self.tokenizer, card=False)  # its card is written from the report
        gold = len(self.tokenised["train"])
        training["rows"] = {"gold": gold, "transfer": len(rows) - gold}
        dev = recipe.evaluate(student, self.tokenised["validation"], self.tokenizer)
        warning = quality.student_gap_warning(self.source_record["dev"], dev, config.max_student_gap)
        if warning:
            logger.warning(warning)
        return {"training": training, "dev": dev}

    def augment(self, out: Path, task_record: dict[str, Any]) -> dict[str, Any]:
        """
        Stage `augment` (`compress/augment.py`): near-error rows of the task student labelled by the teacher, a short
        continuation of task distillation with them, and the dev gate (`compress/augment_gate.py`) that decides
        whether the continued student replaces `out/student`; or a record saying why it was skipped.
        """
        from transformers import AutoModelForSequenceClassification

        from .. import augment, augment_gate, qat
        from ..config_checks import augment_budget, augmentation_unavailable

        config = self.config
        if config.augment == "off":
            return {"skipped": "augment='off'", "teacher_calls": 0, "rows_added": 0}
        why_not = augmentation_unavailable(config) or (SINGLE_OUTPUT_NO_AUGMENT if self.single_output else None)
        if why_not:  # `always` is refused there before any work (config_checks, `load`)
            return {"skipped": why_not, "mode": config.augment, "teacher_calls": 0, "rows_added": 0}
        gold = len(self.tokenised["train"])
        budget = augment_budget(config, gold)
        student = AutoModelForSequenceClassification.from_pretrained(augment.start_copy(out))
        saved = augment.load_round(out)  # the teacher's calls of an earlier call of this run: not made again
        if saved is None:
            masked_lm, note = (None, "a transfer set is given")
            if self.data.transfer is None:
                masked_lm, note = augment.source_masked_lm(config.model)
            rows, record = augment.augment(
                student.eval(),
                self.teacher,
                self.tokenizer,
                self.tokenised["train"],
                list(self.data.train["text"]),
                budget=budget,
                max_length=config.max_length,
                seed=config.seed,
                transfer_texts=list(self.data.transfer["text"]) if self.data.transfer is not None else None,
                masked_lm=masked_lm,
                masked_lm_note=note,
            )
            record["budget_from"] = (
                "augment_budget"
                if config.augment_budget is not None
                else f"default: min(1000, max(64, round(0.1 × {gold} gold rows)))"
            )
            augment.save_round(out, rows, record)
        else:
            rows, record = saved
        record["mode"] = config.augment
        if not rows:
            record.update(decision="rejected", why=f"no rows to add ({record.get('why')}): the task student is kept")
            return record
        texts = [row["text"] for row in rows]
        train_rows = self._distillation_rows(texts)
        training = recipe.finetune(  # continued from the task student; the best dev epoch is kept
            student,
            train_rows,
            self.tokenizer,
            epochs=config.augment_epochs,
            learning_rate=config.task_learning_rate,
            teacher=self.teacher,
            eval_dataset=self.tokenised["validation"],
            **self._distillation_settings(out),
        )
        training["rows"] = {"gold": gold, "transfer": len(train_rows) - gold - len(texts), "augmented": len(texts)}
        after = recipe.evaluate(student, self.tokenised["validation"], self.tokenizer)
        gate = augment_gate.decide(
            task_record["dev"],
            after,
            metric=config.best_checkpoint_metric,
            dev_rows=len(self.tokenised["validation"]),
            mode=config.augment,
        )
        if gate["decision"] == "kept":
            qat.replace_student(student, out, self.tokenizer, temporary="student-augment.tmp")
        return {**record, "training": training, **gate}

    def _distillation_settings(self, out: Path) -> dict[str, Any]:
        """The task distillation settings the `task` and `qat` stages share (batches, seed, loss, dev metric)."""
        config = self.config
        return dict(
            batch_size=config.batch_size,
            seed=config.seed,
            work_dir=out / "tmp-trainer",
            show_progress=config.show_progress,
            alpha_ce=config.alpha_ce,
            alpha_kd=config.alpha_kd,
            temperature=config.temperature,
            best_metric=config.best_checkpoint_metric,
        )

    def quantization_aware(self, out: Path) -> dict[str, Any]:
        """
        Stage `qat`: `compress/qat.py` on the student the `task` and `augment` stages kept (copied to
        `out/student-task`), on the rows it was trained on (the augmented ones only when the `augment` stage's
        student was kept).
        """
        from transformers import AutoModelForSequenceClassification

        from .. import augment, qat

        config = self.config
        task_student = qat.keep_task_student(out)
        student = AutoModelForSequenceClassification.from_pretrained(task_student)
        kept = self.augment_record.get("decision") == "kept"
        augmented = [row["text"] for row in augment.load_rows(out, self.augment_record)] if kept else []
        record = qat.quantization_aware_distillation(
            student,
            self.teacher,
            self._distillation_rows(augmented),
            self.tokenised["validation"],
            self.tokenizer,
            steps=config.qat_steps,
            learning_rate=config.qat_learning_rate,
            simulation=self.qat_simulation,
            target=config.qat_target,
            **self._distillation_settings(out),
        )
        qat.replace_student(student, out, self.tokenizer)
        record["task_student"] = str(task_student)
        return record

    def load_student(self, out: Path) -> None:
        from transformers import AutoModelForSequenceClassification

        self.student = AutoModelForSequenceClassification.from_pretrained(out / "student").eval()
        self.student_config = self.student.config

    # ---------------------------------------------------------------------------------- 6-8. checks and the test
    def reload_check(self, out: Path) -> dict[str, Any]:
        texts = self.examples(self.data.validation, 16)
        record = recipe.reload_check(out / "student", self.student, self.tokenizer, texts, self.config.max_length)
        if not record["ok"]:
            raise RuntimeError(f"The saved student does not reload with the same logits: {record}")
        return record

    def latency_models(self) -> dict[str, Any]:
        return {"source": self.teacher_model, "student": self.student}

    def test_record(self) -> dict[str, Any]:
        return {
            "source": recipe.evaluate(self.teacher_model, self.tokenised["test"], self.tokenizer),
            "student": recipe.evaluate(self.student, self.tokenised["test"], self.tokenizer),
        }

    # ------------------------------------------------------------------------------------------------- report
    @staticmethod
    def _before_qat(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The dev scores of the student the `qat` stage started from: the augmented one when the gate kept it."""
        augmented = records.get("augment") or {}
        return augmented["dev_after"] if augmented.get("decision") == "kept" else records["task"]["dev"]

    @classmethod
    def _qat_entries(cls, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The student's `quantization_aware_training` and its dev before it, when the `qat` stage ran."""
        record = records.get("qat") or {}
        if "dev" not in record:
            return {}
        return {"quantization_aware_training": record, "dev_before_qat": cls._before_qat(records)}

    def report(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        test = records["test"]
        source = records["source"]
        # the gap warning follows this call's max_student_gap (a resumed run may change it)
        student_dev = records["qat"]["dev"] if "dev" in records.get("qat", {}) else self._before_qat(records)
        gap = quality.student_gap_warning(source["dev"], student_dev, self.config.max_student_gap)
        warnings = [w for w in (self.teacher_warning, gap) if w]
        return {
            "warnings": warnings,
            "source": {
                "path": self.source_path,
                "model_type": self.source_config.model_type,
                "finetuned_here": records["source"]["finetuned"],
                "training": source.get("training"),
                "dev": source["dev"],
                "majority_baseline": source.get("majority_baseline"),
                "weak": source.get("weak"),
                "test": test.get("source"),
            },
            "student": {
                "task_distillation": records["task"]["training"],
                **self._qat_entries(records),
                "dev": student_dev,
                "test": test.get("student"),
            },
        }
