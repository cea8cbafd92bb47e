"""[`AgoraTrainer`]: a `Trainer` whose training set grows with labelled samples drawn near its dev-set errors.

Its helpers live beside it: `agora.checkpoints` (which checkpoint a run resumes from), `agora.train_data` (the growing
training set and the round sampler) and `agora.hyperparameters` (the original grid and the search); their names stay
importable from here."""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import Sampler
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments

from .._trainer_args import trainer_config
from ..ose.inputs import check_class_labels, check_label
from .callback import STATE_NAME, AgoraCallback, AgoraState, RoundStats  # noqa: F401  (AgoraState: re-exported)
from .checkpoints import (  # noqa: F401  (re-exported: their home before the split)
    _CHECKPOINT,
    INITIAL_NAME,
    TRAINER_STATE_NAME,
    checkpoint_is_complete,
    newest_complete_checkpoint,
    resolve_resume_checkpoint,
)
from .collator import AgoraCollator, model_row
from .config import AgoraConfig, resume_value  # noqa: F401  (resume_value: re-exported)
from .hyperparameters import AGORA_GRID, AgoraHyperparameterSearch  # noqa: F401  (AGORA_GRID: re-exported)
from .labellers import as_labeller
from .samplers import EmbeddingSampler, PoolSampler, TokenSubstitutionSampler
from .train_data import AgoraTrainDataset, RoundSampler

logger = logging.getLogger(__name__)


class AgoraTrainer(AgoraHyperparameterSearch, Trainer):
    """
    Agora fine-tuning: train, find the dev points the model gets wrong, sample new points near them, label them with
    `labeller`, add the confident ones to the training set, and repeat for `args.agora_rounds` rounds.

    Takes `Trainer`'s arguments (datasets already tokenized, or with `inputs_embeds` rows; no `data_collator`: it
    builds its own) plus, by keyword only, the Agora ones below. `args` is an [`AgoraConfig`]; `None` gives the
    default one (output folder `<model name>-agora`) and a plain `TrainingArguments` is converted (its fields kept,
    the Agora fields at their defaults), as trl's trainers do.

    - `labeller`: a transformers pipeline, a sequence-classification model, a `(model, tokenizer)` pair, a
      [`~agora.labellers.Labeller`] or a callable (see [`~agora.labellers.as_labeller`]);
    - `sampler`: a sampler instance overriding `args.agora_sampler`;
    - `unlabelled_pool` (+ optional `pool_encoder`, `pool_encoder_tokenizer`) for the `"pool"` sampler; with a
      `pool_encoder` the pool is embedded once in `train()` before the first step (`agora_pool_index_seconds`), not
      inside the rounds;
    - `masked_lm`: a masked LM sharing the student's vocabulary for the `"text"` sampler (default: embedding-nearest
      tokens of the student's own input-embedding matrix).

    Mechanics: one `Trainer.train()` call; one Trainer epoch is one round of a fixed number of optimizer steps
    (`num_train_epochs`/`max_steps` measured on the original train set), drawn from the current, growing training set.
    Optimizer, LR schedule (spanning all `agora_rounds + 1` rounds), gradient accumulation and accelerate all stay
    Trainer's own; [`AgoraCallback`] runs the rounds at each epoch end. `trainer.agora_history` lists the
    [`RoundStats`].

    Example:

    ```python
    >>> from hf_bort import AgoraConfig, AgoraTrainer
    >>> args = AgoraConfig("out", agora_rounds=3, agora_sampler="text", num_train_epochs=10)
    >>> trainer = AgoraTrainer(model=student, args=args, train_dataset=train, eval_dataset=dev,
    ...                        labeller=teacher_pipeline, processing_class=tokenizer)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    >>> trainer.agora_history[-1].accepted  # doctest: +SKIP
    ```
    """

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: AgoraConfig | TrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        model_init: Callable[..., PreTrainedModel] | None = None,
        compute_loss_func: Callable | None = None,
        compute_metrics: Callable | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
        optimizer_cls_and_kwargs: tuple | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        *,
        labeller=None,
        sampler=None,
        unlabelled_pool=None,
        pool_encoder=None,
        pool_encoder_tokenizer=None,
        masked_lm=None,
    ):
        # trl's convention: no args -> the default AgoraConfig; a plain TrainingArguments -> an AgoraConfig with its
        # fields (the Agora fields at their defaults).
        config = trainer_config(args, AgoraConfig, model, "agora")
        if labeller is None:
            raise ValueError("AgoraTrainer needs a `labeller` (model, pipeline or callable).")
        if data_collator is not None:
            raise ValueError("AgoraTrainer builds its own data_collator (token and embedding rows); pass none.")
        train, dev = train_dataset, eval_dataset
        if train is None or len(train) == 0:
            raise ValueError("AgoraTrainer train_dataset must be a non-empty dataset.")
        if dev is None or isinstance(dev, dict):
            raise ValueError("AgoraTrainer eval_dataset (the dev set) must be one labelled dataset.")
        if config.agora_sampler == "pool" and sampler is None and unlabelled_pool is None:
            raise ValueError(
                "AgoraConfig.agora_sampler='pool' needs `unlabelled_pool` (a list of texts or a dataset)."
            )
        if config.agora_sampler is None:  # resolved on a copy: the caller's arguments stay as they are
            config = copy.copy(config)
            config.agora_sampler = "pool" if unlabelled_pool is not None else "embedding"
        selection_rows, stopping_rows = list(range(len(dev))), []
        stopping = dev
        if config.agora_v2:
            from .selection import stratified_split

            labels = [model_row(dev[i]).get("labels") for i in range(len(dev))]
            if any(label is None for label in labels):
                raise ValueError("AgoraTrainer eval_dataset (dev set) rows need labels: Agora needs dev labels.")
            selection_rows, stopping_rows = stratified_split(
                labels, config.agora_selection_share, config.agora_generator_seed
            )
            stopping = dev.select(stopping_rows) if hasattr(dev, "select") else [dev[i] for i in stopping_rows]
            # AgoraCollator keeps only model (and v2 loss) keys itself; Trainer's column removal would drop the
            # soft-label keys before it, so it is off (on a copy of the arguments).
            config = copy.copy(config)
            config.remove_unused_columns = False
            if pool_encoder is not None:
                logger.warning("Agora v2 searches the pool in the student's own space: `pool_encoder` is unused.")
        super().__init__(
            model=model,
            args=config,
            train_dataset=train,
            eval_dataset=stopping,
            processing_class=processing_class,
            model_init=model_init,
            compute_loss_func=compute_loss_func,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )

        model_config = self.model.config
        self.num_labels = int(model_config.num_labels)
        # An out-of-range class id fails here, naming the row and column, not as an IndexError mid-training.
        check_class_labels(train, self.num_labels, "AgoraTrainer train_dataset")
        tokenizer = self.processing_class
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(model_config, "pad_token_id", None) or 0
        self.data_collator = AgoraCollator(pad)
        all_dev_points = self._dev_points(dev, config.agora_text_column)
        self.dev_points = [all_dev_points[i] for i in selection_rows]
        self.stopping_points = [all_dev_points[i] for i in stopping_rows]
        #: v2: dev row positions of the selection part (errors, joins training after round 0) and the stopping part
        #: (Trainer's `eval_dataset`: model choice, early stopping, hyperparameter_search). v1: all dev rows select.
        self.selection_rows, self.stopping_rows = selection_rows, stopping_rows

        self.labeller = as_labeller(
            labeller,
            num_labels=self.num_labels,
            label2id=dict(getattr(model_config, "label2id", {}) or {}),
            max_length=config.agora_max_length,
        )
        self.labeller.check_label_space(self.num_labels, dict(getattr(model_config, "id2label", {}) or {}))
        self.sampler = (
            sampler
            if sampler is not None
            else self._default_sampler(
                config, tokenizer, unlabelled_pool, pool_encoder, pool_encoder_tokenizer, masked_lm
            )
        )
        if getattr(self.sampler, "tokenizer", "absent") is None:
            self.sampler.tokenizer = tokenizer

        self.agora_state = AgoraState()
        self.agora_pool_index_seconds = 0.0  # time `train()` spent embedding the pool with a fixed encoder
        self.base_train_dataset = self.train_dataset
        self.train_dataset = AgoraTrainDataset(self.base_train_dataset, self.agora_state)
        self._pool_rows: list[dict] | None = None
        self.agora_callback = AgoraCallback(
            config=config,
            state=self.agora_state,
            dev_points=self.dev_points,
            sampler=self.sampler,
            labeller=self.labeller,
            train_size=lambda: len(self.train_dataset),
            log_fn=self.log,
            pad_token_id=pad,
            train_points=[model_row(self.base_train_dataset[i]) for i in range(len(self.base_train_dataset))]
            if config.agora_v2
            else None,
            stopping_points=self.stopping_points,
            pool_rows=self.pool_rows if isinstance(self.sampler, PoolSampler) else None,
            num_labels=self.num_labels,
        )
        self.add_callback(self.agora_callback)

    # Model card ---------------------------------------------------------------------------------------------------
    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> None:
        """
        Writes `README.md` (hf_bort's card: Agora settings, rounds, dev metrics) into `output_dir` (default
        `args.output_dir`); called by `save_model` and by `Trainer.push_to_hub`, which uploads it. Takes
        `Trainer.create_model_card`'s arguments: `tags`, `dataset_tags` (Hub dataset ids) and `finetuned_from` are
        used; the others belong to transformers' own card.
        """
        if not self.is_world_process_zero():
            return
        from ..cards import agora_card, write_card

        hub_name = self.args.hub_model_id.split("/")[-1] if self.args.hub_model_id else None
        card = agora_card(self, model_name=model_name or hub_name)
        card.repo_id = self.args.hub_model_id
        card.tags += [tags] if isinstance(tags, str) else list(tags or [])
        card.datasets += [dataset_tags] if isinstance(dataset_tags, str) else list(dataset_tags or [])
        if finetuned_from:
            card.source = finetuned_from
        folder = output_dir or self.args.output_dir
        os.makedirs(folder, exist_ok=True)
        write_card(card, folder)

    # Construction helpers -----------------------------------------------------------------------------------------
    def _dev_points(self, dev, text_column: str) -> list[dict]:
        columns = getattr(dev, "column_names", None)
        if columns is not None and "label" not in columns and "labels" not in columns:
            raise ValueError(
                f"AgoraTrainer eval_dataset (dev set) needs a 'label' or 'labels' column; it has {columns}."
            )
        points = []
        for i in range(len(dev)):
            row = dev[i]
            point = model_row(row)
            if point.get("labels") is None:
                raise ValueError(f"AgoraTrainer eval_dataset (dev set) row {i} has no label: Agora needs dev labels.")
            check_label(point["labels"], self.num_labels, f"AgoraTrainer eval_dataset (dev set) row {i}")
            if "input_ids" not in point and "inputs_embeds" not in point:
                raise ValueError(
                    "AgoraTrainer eval_dataset rows need `input_ids` (tokenize first) or `inputs_embeds`."
                )
            if isinstance(row.get(text_column), str):
                point["text"] = row[text_column]
            points.append(point)
        return points

    @staticmethod
    def _default_sampler(config, tokenizer, pool, encoder, encoder_tokenizer, masked_lm):
        if config.agora_sampler == "embedding":
            return EmbeddingSampler(config.agora_radius, tokenizer=tokenizer)
        if config.agora_sampler == "text":
            return TokenSubstitutionSampler(
                config.agora_radius, config.agora_top_k, tokenizer=tokenizer, masked_lm=masked_lm
            )
        return PoolSampler(
            pool,
            encoder=encoder,
            encoder_tokenizer=encoder_tokenizer,
            tokenizer=tokenizer,
            text_column=config.agora_text_column,
            batch_size=config.per_device_eval_batch_size,
            max_length=config.agora_max_length,
        )

    def pool_rows(self) -> list[dict]:
        """The pool tokenized once with the student's tokenizer (`input_ids`, `attention_mask`, `text`), for v2."""
        if self._pool_rows is None:
            sampler = self.sampler
            enc = sampler.tokenizer(sampler.texts, truncation=True, max_length=sampler.max_length)
            self._pool_rows = [
                {
                    "input_ids": torch.tensor(enc["input_ids"][k]),
                    "attention_mask": torch.tensor(enc["attention_mask"][k]),
                    "text": text,
                }
                for k, text in enumerate(sampler.texts)
            ]
        return self._pool_rows

    # Public API ---------------------------------------------------------------------------------------------------
    @property
    def agora_history(self) -> list[RoundStats]:
        """Per-round statistics of the last (or current) training run."""
        return list(self.agora_state.history)

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """
        `Trainer.train`, with the Agora state reset (or restored from the checkpoint) and the labeller probed.
        `resume_from_checkpoint`: a checkpoint folder, or `True` for the newest complete one in `output_dir` (see
        [`resolve_resume_checkpoint`]); a missing or incomplete checkpoint raises instead of training from scratch.
        """
        self.agora_state.reset()
        resume_from_checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        self.agora_callback.initial_state = None  # v2 retraining: taken in on_train_begin (after model_init)
        if resume_from_checkpoint is not None:
            path = os.path.join(resume_from_checkpoint, STATE_NAME)
            self.agora_state.load_dict(torch.load(path, weights_only=True))
            initial = os.path.join(resume_from_checkpoint, INITIAL_NAME)
            if self.args.agora_v2 and self.args.agora_retrain and os.path.isfile(initial):
                self.agora_callback.initial_state = torch.load(initial, weights_only=True)
        self._probe_labeller()
        if isinstance(self.sampler, PoolSampler) and not self.args.agora_v2:  # v1's fixed encoder: indexed once
            start = time.perf_counter()
            self.sampler.index()
            self.agora_pool_index_seconds = time.perf_counter() - start
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """
        `Trainer.save_model`, then the model card beside the weights; into a `checkpoint-N` folder it also writes
        `agora_state.pt` (main process, atomically).
        Trainer saves the model first and `trainer_state.json` last, so the Agora state is part of every checkpoint
        that is complete, never written after it.
        """
        super().save_model(output_dir, _internal_call=_internal_call)
        if not self.args.should_save:
            return
        self.create_model_card(output_dir=output_dir or self.args.output_dir)  # the card beside the weights
        if output_dir is None:
            return
        if _CHECKPOINT.fullmatch(os.path.basename(os.path.normpath(output_dir))):
            os.makedirs(output_dir, exist_ok=True)
            tmp = os.path.join(output_dir, f".{STATE_NAME}.tmp")
            if self.agora_callback.initial_state is not None:  # v2 retraining resumes from the same initial weights
                initial = os.path.join(output_dir, f".{INITIAL_NAME}.tmp")
                torch.save(self.agora_callback.initial_state, initial)
                os.replace(initial, os.path.join(output_dir, INITIAL_NAME))
            torch.save(self.agora_state.to_dict(), tmp)
            os.replace(tmp, os.path.join(output_dir, STATE_NAME))

    def _probe_labeller(self) -> None:
        """Labels one sample before training, so a labeller with the wrong label space fails early."""
        if isinstance(self.sampler, PoolSampler):
            text = self.sampler.texts[0]
            probe = [{"text": text, **{k: torch.tensor(v) for k, v in self.processing_class(text).items()}}]
        else:
            generator = torch.Generator().manual_seed(0)
            probe = self.sampler.sample(self.dev_points[:1], self.model, 1, generator)[:1]
        if probe:
            self.labeller(probe)

    def _steps_per_round(self) -> int:
        args = self.args
        if args.max_steps > 0:
            return args.max_steps
        batches = math.ceil(len(self.base_train_dataset) / (self._train_batch_size * args.world_size))
        return max(1, math.ceil(args.num_train_epochs * batches / args.gradient_accumulation_steps))

    # Trainer hooks (kept minimal) ---------------------------------------------------------------------------------
    def _get_train_sampler(self, *args, **kwargs) -> Sampler:
        steps = self._steps_per_round()
        length = steps * self.args.gradient_accumulation_steps * self._train_batch_size * self.args.world_size
        return RoundSampler(self.train_dataset, length, self.args.agora_generator_seed)

    def set_initial_training_values(self, args: TrainingArguments, *rest, **kwargs):
        """Trainer's values for a run of `agora_rounds + 1` rounds of `steps_per_round` optimizer steps: `args`
        (`num_train_epochs`/`max_steps`: one round) is handed on with `max_steps` set to the whole run, so Trainer
        counts one epoch (one pass of the round sampler) per round."""
        steps = self._steps_per_round()
        self.agora_callback.steps_per_round = steps
        run = copy.copy(args)  # the caller's arguments (saved in checkpoints and cards) are left as they are
        run.max_steps = (self.args.agora_rounds + 1) * steps
        return super().set_initial_training_values(run, *rest, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer = None):
        """Trainer's scheduler; with v2's `agora_round_schedule` the same one-round schedule (warm-up and decay over
        one round's steps) restarts every round."""
        args = self.args
        if self.lr_scheduler is not None or not (args.agora_v2 and args.agora_round_schedule):
            return super().create_scheduler(num_training_steps, optimizer)
        from transformers import get_scheduler

        steps = self._steps_per_round()
        optimizer = self.optimizer if optimizer is None else optimizer
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        one_round = get_scheduler(
            args.lr_scheduler_type,
            optimizer=probe,
            num_warmup_steps=args.get_warmup_steps(steps),
            num_training_steps=steps,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs,
        )
        factors = getattr(one_round, "lr_lambdas", None)
        if not factors:  # a scheduler without a step -> factor function: Trainer's run-long one
            return super().create_scheduler(num_training_steps, optimizer)
        factor = factors[0]
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step % steps))
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """
        Merges sampled `inputs_embeds` rows into a batch of token rows; then Trainer's loss, or, for v2 batches (rows
        with a weight or a teacher's probabilities), [`~agora.losses.soft_label_loss`]: CE on gold and self-trained
        rows, T²·KL to the teacher's distribution on teacher rows, each row times its weight, averaged.
        """
        if "agora_inputs_embeds" in inputs:
            inputs = dict(inputs)
            extra = inputs.pop("agora_inputs_embeds")
            mask = inputs.pop("agora_embeds_mask")
            layer = self.accelerator.unwrap_model(model).get_input_embeddings()
            embeds = layer(inputs.pop("input_ids"))
            inputs["inputs_embeds"] = torch.where(mask.view(-1, 1, 1), extra.to(embeds.dtype), embeds)
        if "agora_weight" not in inputs:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        from .losses import soft_label_loss

        inputs = dict(inputs)
        weights = inputs.pop("agora_weight")
        soft = inputs.pop("agora_soft", None)
        soft_mask = inputs.pop("agora_soft_mask", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        losses = soft_label_loss(
            outputs.logits,
            labels,
            weights=weights,
            soft_targets=soft,
            soft_mask=soft_mask,
            temperature=self.args.agora_temperature,
        )
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = losses.sum() / num_items_in_batch  # Trainer does not divide by accumulation steps in this case
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = losses.mean()
        return (loss, outputs) if return_outputs else loss
