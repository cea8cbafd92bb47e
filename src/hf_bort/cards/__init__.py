"""Model cards for every model hf_bort writes: [`BortCardData`] gathered along the way, a Jinja template, YAML
metadata built with `huggingface_hub.ModelCardData` (see docs/cards.md)."""

from .builders import (
    agora_card,
    converted_card,
    distilled_card,
    extracted_card,
    onnx_card,
    write_card,
    write_converted_card,
    write_distilled_card,
    write_extracted_card,
)
from .compressed import compressed_card, write_compressed_card
from .data import CARD_NAME, KINDS, TEMPLATE_PATH, BortCardData, EvalRecord, render_card, save_card

__all__ = [
    "CARD_NAME",
    "KINDS",
    "TEMPLATE_PATH",
    "BortCardData",
    "EvalRecord",
    "agora_card",
    "compressed_card",
    "converted_card",
    "distilled_card",
    "extracted_card",
    "onnx_card",
    "render_card",
    "save_card",
    "write_card",
    "write_compressed_card",
    "write_converted_card",
    "write_distilled_card",
    "write_extracted_card",
]
