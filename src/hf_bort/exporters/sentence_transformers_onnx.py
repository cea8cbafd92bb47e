"""
ONNX for a sentence-transformers folder, where sentence-transformers looks for it.

`SentenceTransformer(path, backend="onnx")` loads `onnx/model.onnx` from the transformer module's folder (the root
for current folders, `0_Transformer/` for older ones) with optimum's `ORTModelForFeatureExtraction`, and runs the
pooling / `Dense` / `Normalize` modules on its token embeddings. [`export_sentence_transformer`] writes a copy of
the folder with the encoder exported there (validated against PyTorch like every hf_bort export, then checked
through `SentenceTransformer(..., backend="onnx")` itself when sentence-transformers is installed).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .._outputs import check_not_overlapping, check_output_dir, check_overwrite, clean_stale, make_workdir, replace_dir

logger = logging.getLogger(__name__)

ST_ONNX_SUBFOLDER = "onnx"  # sentence-transformers' `backend="onnx"` folder, inside the transformer module's


def is_sentence_transformers_folder(path: Any) -> bool:
    """A local folder with a `modules.json` (sentence-transformers' module list)."""
    return isinstance(path, (str, os.PathLike)) and (Path(path) / "modules.json").is_file()


def st_onnx_dir(folder: str | os.PathLike) -> Path:
    """Where `SentenceTransformer(folder, backend="onnx")` looks for `model.onnx`."""
    from ..models.sentence_transformers_folder import SentenceTransformerLayout

    layout = SentenceTransformerLayout.read(folder)
    if layout is None:
        raise ValueError(f"{str(folder)!r} is not a sentence-transformers folder: it has no modules.json.")
    return layout.transformer_output_dir(folder) / ST_ONNX_SUBFOLDER


def export_sentence_transformer(
    folder: str | os.PathLike,
    output_dir: str | os.PathLike,
    task: str | None = None,
    *,
    overwrite: bool = False,
    atol: float = 1e-4,
    validation_texts: list[str] | tuple[str, ...] | None = None,
    export_encoder,
    **export_kwargs,
):
    """
    Write to `output_dir` a copy of the sentence-transformers `folder` with its encoder exported to ONNX as
    `<transformer module>/onnx/model.onnx` (and `model_quantized.onnx` with `quantize`; beside them the config, code
    and tokenizer `ORTModelForFeatureExtraction.from_pretrained(..., subfolder=...)` needs), the layout
    `SentenceTransformer(output_dir, backend="onnx")` loads. The export is validated against PyTorch (`atol`) and,
    when sentence-transformers is installed, the ONNX pipeline's embeddings are compared with the PyTorch ones on
    `validation_texts` (an [`OnnxValidationError`] above `atol`). Returns the [`OnnxExportResult`], its paths in
    `output_dir`. A non-empty `output_dir` is replaced only with `overwrite=True`. `export_encoder` exports the
    encoder: `export_onnx` passes itself (it calls this function for such folders; users call `export_onnx`).
    """
    from transformers import AutoTokenizer

    from ..models.sentence_transformers_folder import transformer_source
    from ..models.source_class import load_source_model
    from .validation import VALIDATION_TEXTS, OnnxValidationError

    if task not in (None, "feature-extraction"):
        raise ValueError(
            f"A sentence-transformers folder exports its encoder (task 'feature-extraction'); got task {task!r}."
        )
    folder, output_dir = Path(folder), check_output_dir(output_dir, "output_dir")
    check_not_overlapping(folder, output_dir, "model_or_path")
    check_overwrite(output_dir, overwrite)
    clean_stale(output_dir)
    workdir = make_workdir(output_dir)
    try:
        shutil.copytree(folder, workdir, dirs_exist_ok=True)
        target = st_onnx_dir(workdir)
        shutil.rmtree(target, ignore_errors=True)  # an older export in the source folder is replaced
        staging = workdir.parent / f"{workdir.name}-onnx"
        encoder_dir = transformer_source(folder)
        encoder = load_source_model(encoder_dir).eval()  # the encoder, whatever head `architectures` names
        result = export_encoder(
            encoder,
            staging,
            tokenizer=export_kwargs.pop("tokenizer", None) or AutoTokenizer.from_pretrained(encoder_dir),
            task="feature-extraction",
            atol=atol,
            validation_texts=validation_texts,
            **export_kwargs,
        )
        (staging / "README.md").unlink(missing_ok=True)  # the folder's own card stays the one card
        shutil.move(str(staging), target)  # the ONNX files with their config, code and tokenizer (ORTModel's layout)
        difference = _sentence_transformers_difference(workdir, validation_texts or VALIDATION_TEXTS)
        if difference is not None and not difference <= atol:
            raise OnnxValidationError(
                f"SentenceTransformer(..., backend='onnx') embeddings differ from the PyTorch ones by {difference:.3g}"
                f" (atol {atol:g})."
            )
        replace_dir(workdir, output_dir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    onnx_dir = st_onnx_dir(output_dir)
    result.output_dir = str(output_dir)
    result.onnx_path = str(onnx_dir / "model.onnx")
    if result.quantized_path is not None:
        result.quantized_path = str(onnx_dir / "model_quantized.onnx")
    return result


def _sentence_transformers_difference(folder: Path, texts) -> float | None:
    """Largest embedding difference between the folder's PyTorch and ONNX pipelines (None without the library)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        logger.warning("sentence-transformers is not installed: the backend='onnx' pipeline was not checked.")
        return None
    texts = list(texts)
    reference = SentenceTransformer(str(folder), device="cpu")  # hf_bort is imported: bort is registered
    onnx = SentenceTransformer(str(folder), device="cpu", backend="onnx")
    expected = reference.encode(texts, convert_to_tensor=True)
    return float((onnx.encode(texts, convert_to_tensor=True) - expected).abs().max())


__all__ = ["ST_ONNX_SUBFOLDER", "export_sentence_transformer", "is_sentence_transformers_folder", "st_onnx_dir"]
