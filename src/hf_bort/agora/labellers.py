"""
Labellers: what gives Agora's new points their labels. A labeller takes a list of *points* and returns a
[`LabelResult`]. A point is a dict with some of: `text` (always present for text samples, and for embedding samples
when a tokenizer exists: the nearest-token decoding), `input_ids`, `attention_mask`, `inputs_embeds` (embedding
samples and continuous-feature datasets).

[`as_labeller`] wraps a transformers pipeline, a sequence-classification model (with or without its tokenizer) or a
plain callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import _device


@dataclass
class LabelResult:
    """
    Labels (ids in the student's label space), the labeller's confidence in each (1.0 when it gives none) and, when
    the labeller gives them, its class probabilities (one row of `num_labels` per point; Agora v2's soft labels).
    """

    labels: list[int]
    confidences: list[float]
    probabilities: list[list[float]] | None = None

    def distributions(self, num_labels: int) -> torch.Tensor:
        """[N, num_labels] probabilities: the labeller's own, or (when it gave none) the confidence on the label and
        the rest spread evenly over the other classes."""
        if self.probabilities is not None:
            return torch.as_tensor(self.probabilities, dtype=torch.float32).reshape(len(self.labels), num_labels)
        out = torch.zeros(len(self.labels), num_labels)
        for row, (label, confidence) in enumerate(zip(self.labels, self.confidences, strict=True)):
            rest = (1.0 - confidence) / max(1, num_labels - 1) if num_labels > 1 else 0.0
            out[row] = rest
            out[row, label] = confidence if num_labels > 1 else 1.0
        return out


def _normalise(name: str) -> str:
    return str(name).strip().lower()


class Labeller:
    """Base class. Subclasses implement `__call__(points) -> LabelResult` and may refine `check_label_space`."""

    num_labels: int

    def __call__(self, points: Sequence[dict]) -> LabelResult:  # pragma: no cover - interface
        raise NotImplementedError

    def check_label_space(self, num_labels: int, id2label: dict[int, str] | None) -> None:
        """Raises ValueError when this labeller cannot produce labels in the student's label space."""

    def validate(self, result: LabelResult, count: int, num_labels: int) -> LabelResult:
        if len(result.labels) != count or len(result.confidences) != count:
            raise ValueError(
                f"labeller returned {len(result.labels)} labels for {count} points; expected one label per point."
            )
        for label in result.labels:
            if not isinstance(label, int) or not 0 <= label < num_labels:
                raise ValueError(
                    f"labeller returned the unknown label {label!r}; expected an int in [0, {num_labels}) "
                    "(the student's label ids)."
                )
        return result


def _from_output(output, num_labels: int) -> LabelResult:
    """Accepts ints, (label, confidence) pairs, probability rows ([N, C] array/tensor) or pipeline-style dicts."""
    if isinstance(output, LabelResult):
        return output
    if hasattr(output, "shape") and len(output.shape) == 2:
        probs = torch.as_tensor(output, dtype=torch.float32)
        if probs.shape[1] != num_labels:
            raise ValueError(
                f"labeller returned probability rows of width {probs.shape[1]}; expected num_labels={num_labels}."
            )
        confidence, labels = probs.max(dim=1)
        return LabelResult([int(x) for x in labels], [float(x) for x in confidence], probs.tolist())
    labels, confidences = [], []
    for item in output:
        if isinstance(item, tuple | list) and len(item) == 2:
            label, confidence = item
        elif hasattr(item, "item") and not isinstance(item, dict):
            label, confidence = item.item(), 1.0
        else:
            label, confidence = item, 1.0
        labels.append(int(label) if isinstance(label, int) or hasattr(label, "__index__") else label)
        confidences.append(float(confidence))
    return LabelResult(labels, confidences)


class CallableLabeller(Labeller):
    """
    Wraps `fn(points) -> labels`, where labels are ints, `(label, confidence)` pairs, or an `[N, num_labels]`
    probability array.
    """

    def __init__(self, fn: Callable[[list[dict]], object], num_labels: int):
        self.fn = fn
        self.num_labels = num_labels

    def __call__(self, points):
        result = _from_output(self.fn(list(points)), self.num_labels)
        return self.validate(result, len(points), self.num_labels)


class ModelLabeller(Labeller):
    """
    A sequence-classification model as labeller. With a tokenizer it reads the points' `text`; without one it reads
    `inputs_embeds` (same embedding space as the student) or `input_ids` (same vocabulary). Confidence is the softmax
    probability of the predicted class.
    """

    def __init__(self, model, tokenizer=None, *, batch_size: int = 64, max_length: int = 128):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_labels = int(model.config.num_labels)

    def check_label_space(self, num_labels, id2label):
        if self.num_labels != num_labels:
            raise ValueError(
                f"labeller model has num_labels={self.num_labels} but the student has num_labels={num_labels}: "
                "the label spaces must match."
            )
        theirs = getattr(self.model.config, "id2label", None) or {}
        if id2label and theirs and not _default_names(id2label) and not _default_names(theirs):
            mine = {int(k): _normalise(v) for k, v in id2label.items()}
            other = {int(k): _normalise(v) for k, v in theirs.items()}
            if mine != other:
                raise ValueError(f"labeller model id2label {theirs} differs from the student's id2label {id2label}.")

    @torch.no_grad()
    def __call__(self, points):
        device = _device.compute_device()  # the labeller model runs on this rank's accelerator, else the CPU
        _device.to_device(self.model, device)
        was_training = self.model.training
        self.model.eval()
        labels, confidences, rows = [], [], []
        try:
            for start in range(0, len(points), self.batch_size):
                chunk = points[start : start + self.batch_size]
                inputs = self._inputs(chunk)
                logits = self.model(**_device.to_device(inputs, device)).logits
                probs = logits.float().softmax(-1)
                confidence, label = probs.max(-1)
                labels += [int(x) for x in label]
                confidences += [float(x) for x in confidence]
                rows += probs.cpu().tolist()
        finally:
            self.model.train(was_training)
        return self.validate(LabelResult(labels, confidences, rows), len(points), self.num_labels)

    def _inputs(self, chunk):
        if self.tokenizer is not None:
            missing = [i for i, p in enumerate(chunk) if p.get("text") is None]
            if missing:
                raise ValueError(
                    "ModelLabeller with a tokenizer needs a `text` for every point (the sampler gave none)."
                )
            return dict(
                self.tokenizer(
                    [p["text"] for p in chunk],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
            )
        from .collator import pad_points

        key = "inputs_embeds" if all("inputs_embeds" in p for p in chunk) else "input_ids"
        batch = pad_points(chunk, pad_token_id=getattr(self.model.config, "pad_token_id", 0) or 0)
        out = {key: batch[key]}
        if "attention_mask" in batch:
            out["attention_mask"] = batch["attention_mask"]
        return out


class PipelineLabeller(Labeller):
    """A transformers `text-classification` pipeline; its label names are mapped onto the student's `label2id`."""

    def __init__(self, pipe, label2id: dict[str, int], *, batch_size: int = 64, max_length: int = 128):
        self.pipe = pipe
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_labels = len(label2id)
        self.mapping = {_normalise(k): int(v) for k, v in label2id.items()}
        for i in range(self.num_labels):
            self.mapping.setdefault(f"label_{i}", i)

    def _map(self, name: str) -> int:
        key = _normalise(name)
        if key not in self.mapping:
            raise ValueError(
                f"labeller returned the unknown label {name!r}; the student's labels are {sorted(self.mapping)}."
            )
        return self.mapping[key]

    def check_label_space(self, num_labels, id2label):
        names = getattr(getattr(self.pipe, "model", None), "config", None)
        names = getattr(names, "id2label", None) or {}
        for name in names.values():
            self._map(name)

    def __call__(self, points):
        texts = [p.get("text") for p in points]
        if any(t is None for t in texts):
            raise ValueError("PipelineLabeller needs a `text` for every point (the sampler gave none).")
        outputs = self.pipe(texts, batch_size=self.batch_size, truncation=True, max_length=self.max_length)
        outputs = [o[0] if isinstance(o, list) else o for o in outputs]
        result = LabelResult([self._map(o["label"]) for o in outputs], [float(o["score"]) for o in outputs])
        return self.validate(result, len(points), self.num_labels)


def _default_names(id2label: dict) -> bool:
    return all(re.fullmatch(r"label_\d+", _normalise(v)) for v in id2label.values())


def as_labeller(obj, *, num_labels: int, label2id: dict[str, int] | None = None, max_length: int = 128) -> Labeller:
    """
    Wraps `obj` as a [`Labeller`]: a `Labeller` as is; a transformers `Pipeline`; a model with a `config.num_labels`
    (or a `(model, tokenizer)` pair); any other callable.
    """
    if isinstance(obj, Labeller):
        return obj
    try:
        from transformers import Pipeline
    except ImportError:  # pragma: no cover
        Pipeline = ()  # noqa: N806
    if isinstance(obj, Pipeline):
        return PipelineLabeller(obj, label2id or {f"LABEL_{i}": i for i in range(num_labels)}, max_length=max_length)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], torch.nn.Module):
        return ModelLabeller(obj[0], obj[1], max_length=max_length)
    if isinstance(obj, torch.nn.Module) and hasattr(getattr(obj, "config", None), "num_labels"):
        return ModelLabeller(obj, max_length=max_length)
    if callable(obj):
        return CallableLabeller(obj, num_labels)
    raise TypeError(
        f"labeller must be a Labeller, a transformers Pipeline, a sequence-classification model, a (model, tokenizer) "
        f"pair or a callable; got {type(obj).__name__}."
    )
