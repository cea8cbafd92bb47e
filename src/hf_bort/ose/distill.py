"""Distillation losses and a `Trainer` subclass for the distillation pre-training of an extracted Bort model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import ModelOutput

from .._trainer_args import trainer_config
from .inputs import check_class_labels
from .logits import kd_loss, label_classes, task_loss


def bort_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha_mlm: float = 0.1,
    alpha_kd: float = 0.5,
) -> torch.Tensor:
    """
    The Bort recipe: `alpha_mlm` · MLM cross-entropy on the masked tokens (labels -100 elsewhere) + `alpha_kd` · T² ·
    KL(teacher ‖ student) at temperature T, the KL taken over the masked positions (all positions when none is).
    """
    vocab = student_logits.shape[-1]
    ce = F.cross_entropy(student_logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=-100)
    positions = labels.reshape(-1) != -100
    if not bool(positions.any()):
        positions = torch.ones_like(positions)
        ce = student_logits.sum() * 0.0
    kd = kd_loss(
        student_logits.reshape(-1, vocab)[positions], teacher_logits.reshape(-1, vocab)[positions], temperature
    )
    return alpha_mlm * ce + alpha_kd * kd


def hidden_state_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    projection: nn.Module | None = None,
) -> torch.Tensor:
    """
    Relative squared error ‖P·s − t‖² / ‖t‖² over the non-padding tokens, where P (`projection`, learned) maps the
    student's width to the teacher's when they differ. Scale-free, so (1+ε) comparisons of it are meaningful.
    """
    if projection is not None:
        student_hidden = projection(student_hidden)
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"Student hidden states {tuple(student_hidden.shape)} do not match the teacher's "
            f"{tuple(teacher_hidden.shape)}: pass a `projection`."
        )
    if attention_mask is not None:
        keep = attention_mask.bool()
        student_hidden, teacher_hidden = student_hidden[keep], teacher_hidden[keep]
    return ((student_hidden - teacher_hidden) ** 2).sum() / (teacher_hidden**2).sum().clamp_min(1e-12)


def make_projection(student_width: int, teacher_width: int, dims: list[int] | None = None) -> nn.Linear:
    """
    A learned linear map from the student's width to the teacher's. When the student's residual dims are `dims` of
    the teacher's (extraction), it starts as the embedding that puts each student dim back in its place, so the loss
    at step 0 measures the extracted network as it is.
    """
    projection = nn.Linear(student_width, teacher_width, bias=False)
    with torch.no_grad():
        if dims is not None:
            if len(dims) != student_width:
                raise ValueError(f"`dims` has {len(dims)} entries, expected the student width {student_width}.")
            projection.weight.zero_()
            projection.weight[torch.as_tensor(dims), torch.arange(student_width)] = 1.0
        elif student_width == teacher_width:
            projection.weight.copy_(torch.eye(teacher_width))
    return projection


OBJECTIVES = ("auto", "mlm", "logits", "hidden")


def task_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float = 2.0,
    alpha_ce: float = 0.5,
    alpha_kd: float = 0.5,
) -> torch.Tensor:
    """
    Task distillation of a classifier: `alpha_ce` · gold loss on `labels` (rows labelled -100, or no labels at all,
    contribute none) + `alpha_kd` · T² · KL(teacher ‖ student) over every row. With ≥ 2 logits the gold loss is
    cross-entropy and the KL is the softmax's; with a single logit (a reranker) they are BCE-with-logits on 0 / 1 and
    the Bernoulli KL of the sigmoids (`logits.py`).
    """
    return task_loss(
        student_logits, teacher_logits, labels, temperature=temperature, alpha_ce=alpha_ce, alpha_kd=alpha_kd
    )


@dataclass
class DistillationConfig(TrainingArguments):
    """
    [`TrainingArguments`] plus the distillation fields. Defaults follow the Bort recipe (AdamW, lr 1e-4, warm-up 1%,
    linear decay; loss 0.1·MLM CE + 0.5·T²·KL at T = 2 when the teacher has an MLM head, otherwise the relative error
    of the projected last hidden state).

    `distillation_objective` picks the loss; `"auto"` chooses `"mlm"` when student and teacher both have MLM heads,
    `"logits"` when both have classification heads with the same labels (task distillation: `alpha_ce` · CE on the
    labels + `alpha_kd` · T²·KL to the teacher's logits, rows with label -100 get the KL term only), and `"hidden"`
    otherwise.
    """

    distillation_objective: str = field(
        default="auto",
        metadata={
            "help": "Loss: 'mlm' (Bort recipe), 'logits' (task distillation of a classifier), 'hidden' (projected "
            "last hidden state) or 'auto' (chosen from the heads of student and teacher).",
            "choices": ["auto", "mlm", "logits", "hidden"],
        },
    )
    alpha_ce: float = field(
        default=0.5, metadata={"help": "Weight of the student's cross-entropy on task labels (objective 'logits')."}
    )

    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the KL term."})
    alpha_mlm: float = field(default=0.1, metadata={"help": "Weight of the student's own MLM cross-entropy."})
    alpha_kd: float = field(default=0.5, metadata={"help": "Weight of T²·KL(teacher ‖ student)."})
    alpha_hidden: float = field(
        default=1.0, metadata={"help": "Weight of the hidden-state loss (used when the teacher has no MLM head)."}
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked for the MLM losses."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW peak learning rate (Bort: 1e-4)."})
    warmup_ratio: float = field(default=0.01, metadata={"help": "Linear warm-up fraction (Bort: 0.01)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the tokenised columns as they are."})

    def __post_init__(self):
        super().__post_init__()
        if not hasattr(TrainingArguments, "warmup_ratio") and self.warmup_ratio and not self.warmup_steps:
            # transformers 5.x has no warmup_ratio: its float warmup_steps in [0, 1) is the fraction
            self.warmup_steps = self.warmup_ratio
        if self.temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature!r}.")
        if self.distillation_objective not in OBJECTIVES:
            raise ValueError(
                f"`distillation_objective` must be one of {list(OBJECTIVES)}, got {self.distillation_objective!r}."
            )
        for name in ("alpha_mlm", "alpha_kd", "alpha_hidden", "alpha_ce"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"`mlm_probability` must be in (0, 1), got {self.mlm_probability!r}.")


def _has_mlm_head(model: nn.Module) -> bool:
    return hasattr(model, "cls") or hasattr(model, "lm_head") or type(model).__name__.endswith("ForMaskedLM")


def _classifier_labels(model: nn.Module) -> int | None:
    """The number of labels of a sequence- or token-classification model, `None` for any other model."""
    if hasattr(model, "get_base_model"):  # a PEFT wrapper
        model = model.get_base_model()
    if type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification")):
        return model.config.num_labels
    return None


def resolve_objective(requested: str, student: nn.Module, teacher: nn.Module) -> str:
    """The loss `DistillationTrainer` uses for `requested` (see [`DistillationConfig`]); errors name the mismatch."""
    mlm = _has_mlm_head(student) and _has_mlm_head(teacher)
    labels = (_classifier_labels(student), _classifier_labels(teacher))
    same_task = labels[0] is not None and labels[0] == labels[1]
    if requested == "auto":
        return "mlm" if mlm else "logits" if same_task else "hidden"
    if requested == "mlm" and not mlm:
        raise ValueError("distillation_objective='mlm' needs a student and a teacher with MLM heads.")
    if requested == "logits" and not same_task:
        raise ValueError(
            "distillation_objective='logits' needs student and teacher classifiers with the same number of labels, "
            f"got student {labels[0]} and teacher {labels[1]} (None: not a classifier)."
        )
    return requested


#: The attribute under which the hidden-state projection is a submodule of the student while it trains.
PROJECTION_NAME = "distillation_projection"


@dataclass
class ProjectedStudentOutput(ModelOutput):
    """What the student returns while it trains with a projection: its own outputs and its projected last hidden
    state (a `ModelOutput`, so DDP's output flattening keeps both)."""

    student: ModelOutput | None = None
    projected_hidden_state: torch.Tensor | None = None


TEACHER_LOGITS = "teacher_logits"


def add_teacher_logits(dataset, teacher: nn.Module, collator, *, batch_size: int = 64):
    """
    `dataset` (tokenised rows: the model's inputs, and `labels` when there are) with a `teacher_logits` column: the
    classifier `teacher`'s logits of each row, computed once in evaluation mode (rows batched by length, padded by
    `collator`, on the teacher's device). [`DistillationTrainer`] then reads them instead of running the teacher on
    every batch of every epoch — the same loss, the teacher's forward paid once instead of once per epoch.

    Example:

    ```python
    >>> rows = add_teacher_logits(tokenised, teacher, DataCollatorWithPadding(tokenizer))  # doctest: +SKIP
    >>> DistillationTrainer(model=student, teacher=teacher, train_dataset=rows, data_collator=collator,
    ...     args=DistillationConfig("out", remove_unused_columns=False))  # doctest: +SKIP
    ```
    """
    if TEACHER_LOGITS in dataset.column_names:
        raise ValueError(f"The rows already hold a `{TEACHER_LOGITS}` column.")
    inputs = [c for c in dataset.column_names if c not in ("labels", "label")]
    columns = {name: dataset[name] for name in inputs}
    order = sorted(range(len(dataset)), key=lambda i: len(columns["input_ids"][i]))  # little padding in a batch
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    logits: list[list[float] | None] = [None] * len(dataset)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collator([{name: values[i] for name, values in columns.items()} for i in chunk])
            out = teacher(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            for i, row in zip(chunk, out.tolist(), strict=True):
                logits[i] = row
    teacher.train(was_training)
    return dataset.add_column(TEACHER_LOGITS, logits)


def _project_last_hidden_state(module: nn.Module, args, output):
    """Forward hook of the training student: adds its projected last hidden state to the outputs, so that the
    projection runs inside the (DDP-wrapped) model's forward like any of its parameters."""
    hidden_states = getattr(output, "hidden_states", None)
    if hidden_states is None:
        return output
    projected = getattr(module, PROJECTION_NAME)(hidden_states[-1])
    return ProjectedStudentOutput(student=output, projected_hidden_state=projected)


class DistillationTrainer(Trainer):
    """
    A [`Trainer`] that distils `teacher` into the model being trained. `compute_loss` is overridden (and `train`,
    to carry the projection below), so everything else — accelerate, gradient accumulation, logging, checkpoints —
    is Trainer's own; `accelerate launch` scales it. Takes `Trainer`'s arguments plus `teacher` (keyword only,
    placed on the device by accelerate in evaluation mode); `args` is a [`DistillationConfig`], `None` gives the
    default one (output folder `<model name>-distilled`) and a plain `TrainingArguments` is converted (its fields
    kept, the distillation fields at their defaults), as trl's trainers do.

    - Teacher and student with MLM heads: [`bort_distillation_loss`] on MLM-masked batches (use
      `DataCollatorForLanguageModeling`).
    - Teacher and student classifiers with the same labels: [`task_distillation_loss`] (CE on the labels + T²·KL to
      the teacher's logits), e.g. to fine-tune an extracted student next to the fine-tuned source. A
      `teacher_logits` column in the training rows ([`add_teacher_logits`]: the teacher run once, not every epoch)
      stands for the teacher's forward; Trainer would drop it as an unused column, so it asks for
      `remove_unused_columns=False` (an error otherwise) and the rows must hold only the model's inputs beside it.
    - Otherwise: [`hidden_state_loss`] between the last hidden states, through a learned projection (initialised from
      `student.ose_plan.dims` when the student was extracted) when the widths differ. During `train()` the
      projection is the student's submodule `distillation_projection` (applied in its forward by a hook), so
      DDP synchronises it, the optimizer trains it (no weight decay) and checkpoints hold it; afterwards the
      student is as it was and `trainer.projection` holds the trained projection.

    Example:

    ```python
    >>> trainer = DistillationTrainer(model=student, teacher=teacher, args=DistillationConfig("out"),
    ...                               train_dataset=tokenised, data_collator=collator)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    ```
    """

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: DistillationConfig | TrainingArguments | None = None,
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
        teacher: nn.Module,
    ):
        if teacher is None:
            raise ValueError("`teacher` is required.")
        # trl's convention: no args -> the default DistillationConfig; a plain TrainingArguments -> a
        # DistillationConfig with its fields (its warm-up kept: `warmup_ratio` is a field of ours on transformers 5.x).
        args = trainer_config(args, DistillationConfig, model, "distilled", warmup_ratio=0.0)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            model_init=model_init,
            compute_loss_func=compute_loss_func,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        teacher.eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        self.objective = resolve_objective(self.args.distillation_objective, self.model, teacher)
        self.use_logits = self.objective != "hidden"
        if self.objective == "logits":  # class ids checked before training, not as an IndexError mid-training
            num_labels = label_classes(_classifier_labels(self.model))  # 0 / 1 for a single output
            check_class_labels(self.train_dataset, num_labels, "DistillationTrainer train_dataset")
            if self.eval_dataset is not None and not isinstance(self.eval_dataset, dict):
                check_class_labels(self.eval_dataset, num_labels, "DistillationTrainer eval_dataset")
        cached = TEACHER_LOGITS in (getattr(self.train_dataset, "column_names", None) or ())
        if cached and (self.objective != "logits" or self.args.remove_unused_columns):
            raise ValueError(
                f"The training rows hold a `{TEACHER_LOGITS}` column: it stands for the teacher's forward only with "
                f"distillation_objective 'logits' (this run's: {self.objective!r}) and remove_unused_columns=False "
                f"(Trainer drops it otherwise; got {self.args.remove_unused_columns})."
            )
        self.projection = None
        if not self.use_logits:
            student_width = self.model.config.hidden_size
            teacher_width = teacher.config.hidden_size
            plan = getattr(self.model, "ose_plan", None)
            dims = plan.dims if plan is not None and len(plan.dims) == student_width else None
            if student_width != teacher_width or dims is not None:
                device = next(self.model.parameters()).device  # where Trainer put the student
                self.projection = make_projection(student_width, teacher_width, dims).to(device)
        # The teacher only runs forward: accelerate places it (and applies mixed precision) without DDP.
        self.teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True)

    def train(self, *args, **kwargs):
        """
        `Trainer.train`, with the projection (when there is one) a submodule of the student for the run: DDP then
        synchronises it, the optimizer trains it and checkpoints save (and resume) it. The student is handed back
        without it, so what the caller saves is the student alone; `trainer.projection` keeps the trained one.
        """
        if self.projection is None:
            return super().train(*args, **kwargs)
        model = self.model
        model.add_module(PROJECTION_NAME, self.projection)
        hook = model.register_forward_hook(_project_last_hidden_state)
        try:
            return super().train(*args, **kwargs)
        finally:
            hook.remove()
            delattr(model, PROJECTION_NAME)

    def get_decay_parameter_names(self, model) -> list[str]:
        """Trainer's, less the projection's weight: it is trained without weight decay."""
        names = super().get_decay_parameter_names(model)
        return [name for name in names if not name.startswith(f"{PROJECTION_NAME}.")]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        inputs.pop("special_tokens_mask", None)
        cached = inputs.pop(TEACHER_LOGITS, None)  # add_teacher_logits: the teacher's logits of these rows
        if cached is None:
            with torch.no_grad():
                teacher_out = self.teacher(**inputs, output_hidden_states=not self.use_logits)
        if self.objective == "logits":
            outputs = model(**inputs)
            loss = task_distillation_loss(
                outputs.logits,
                teacher_out.logits if cached is None else cached.to(outputs.logits.dtype),
                labels,
                temperature=self.args.temperature,
                alpha_ce=self.args.alpha_ce,
                alpha_kd=self.args.alpha_kd,
            )
        elif self.objective == "mlm":
            outputs = model(**inputs)
            if labels is None:
                labels = torch.full_like(inputs["input_ids"], -100)
            loss = bort_distillation_loss(
                outputs.logits,
                teacher_out.logits,
                labels,
                temperature=self.args.temperature,
                alpha_mlm=self.args.alpha_mlm,
                alpha_kd=self.args.alpha_kd,
            )
        else:
            outputs = model(**inputs, output_hidden_states=True)
            if isinstance(outputs, ProjectedStudentOutput):  # projected inside the student's forward (training)
                outputs, student_hidden, projection = outputs.student, outputs.projected_hidden_state, None
            else:
                student_hidden, projection = outputs.hidden_states[-1], self.projection
            loss = self.args.alpha_hidden * hidden_state_loss(
                student_hidden,
                teacher_out.hidden_states[-1],
                inputs.get("attention_mask"),
                projection,
            )
        return (loss, outputs) if return_outputs else loss
