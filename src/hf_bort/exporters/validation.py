"""Validation of an ONNX export against PyTorch: the inputs (real sentences, or seeded random ids), and both
runtimes' outputs on them (compared with [`hf_bort.exporters.agreement`])."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..measure import ort_session, run_session

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

# Real English sentences (movie-review style, varied lengths) used to validate every export.
VALIDATION_TEXTS: tuple[str, ...] = (
    "A gripping, beautifully shot thriller that never lets go.",
    "The plot is thin and the jokes fall flat.",
    "I laughed, I cried, and then I wanted to see it again.",
    "An overlong mess with a few good performances buried inside it.",
    "Its quiet charm sneaks up on you.",
    "Nothing in this film makes sense, least of all the ending.",
    "The cast is terrific, especially in the smaller roles, and the score is lovely.",
    "Dull.",
    "A sharp, funny script elevates what could have been a routine comedy.",
    "By the time the credits roll you will have forgotten most of it.",
    "The director knows exactly when to hold back and when to push.",
    "Too long, too loud and too pleased with itself.",
    "It is the rare sequel that improves on the original in almost every way.",
    "The dialogue sounds like it was written by a committee.",
    "Warm, wise and often very funny.",
    "Even the special effects look tired.",
)


class OnnxValidationError(ValueError):
    """The exported ONNX model's outputs differ from PyTorch's by more than the tolerance."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


def validation_inputs(
    model: PreTrainedModel, task: str, tokenizer: Any = None, texts: list[str] | tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """
    Tokenized real sentences (or, without a tokenizer, seeded random ids with padding) for validation. `texts` may
    hold (text, text_pair) pairs (a cross-encoder's inputs): they are tokenised as pairs.
    """
    import torch

    texts = list(texts if texts is not None else VALIDATION_TEXTS)
    if len(texts) < 3:
        raise ValueError(f"texts must hold at least 3 sentences for validation; got {len(texts)}.")
    second = None
    if isinstance(texts[0], (list, tuple)):
        texts, second = [a for a, _ in texts], [b for _, b in texts]
    if tokenizer is not None:
        encoded = tokenizer(texts, second, padding=True, truncation=True, max_length=128, return_tensors="pt")
        inputs = {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
    else:
        generator = torch.Generator().manual_seed(0)
        lengths = [min(4 + len(text.split()), 32) for text in texts]
        width = max(lengths)
        low = min(5, model.config.vocab_size - 1)
        input_ids = torch.randint(low, model.config.vocab_size, (len(texts), width), generator=generator)
        attention_mask = torch.zeros_like(input_ids)
        for row, length in enumerate(lengths):
            attention_mask[row, :length] = 1
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        input_ids = input_ids.masked_fill(attention_mask == 0, pad)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if getattr(model.config, "type_vocab_size", 0) > 0:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
    if task == "multiple-choice":  # pair consecutive sentences as two choices
        pairs = len(texts) // 2
        inputs = {key: value[: 2 * pairs].reshape(pairs, 2, -1) for key, value in inputs.items()}
    return inputs


def torch_outputs(model: PreTrainedModel, inputs: dict[str, torch.Tensor], names: list[str]) -> dict[str, Any]:
    """The `names` outputs of `model` on `inputs` in PyTorch (inference mode), as float32 numpy arrays."""
    import torch

    with torch.inference_mode():
        output = model(**inputs)
    return {name: output[name].float().numpy() for name in names}


def ort_outputs(onnx_path: Path, inputs: dict[str, torch.Tensor], names: list[str]) -> dict[str, Any]:
    """The `names` outputs of the ONNX file at `onnx_path` on `inputs` in ONNX Runtime (CPU)."""
    return run_session(ort_session(onnx_path), inputs, names)
