"""Issue 22 item 2: cards carry what the source's card says, its Hub id, the versions, labels and a widget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import ModelCard

from hf_bort.cards import compressed_card
from hf_bort.cards.provenance import source_card_metadata, source_hub_id
from hf_bort.cli import main
from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import bert_tokenizer

SOURCE_CARD = """---
license: apache-2.0
language:
- en
- fr
datasets:
- glue
base_model: google-bert/bert-base-uncased
---
# tiny
"""
LABELS = {0: "negative", 1: "positive"}


def _source(folder: Path, *, card: bool = True, recorded: str | None = "someone/tiny-bert") -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY_SHAPE, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    bert_tokenizer(folder).save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    if recorded is not None:  # what transformers records when a Hub model is saved again
        saved["_name_or_path"] = recorded
    else:
        saved.pop("_name_or_path", None)
    (folder / "config.json").write_text(json.dumps(saved))
    if card:
        (folder / "README.md").write_text(SOURCE_CARD)
    return folder


def test_converted_card_carries_the_source_card_and_hub_id(tmp_path):
    source = _source(tmp_path / "src")
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    data = card.data
    assert data.base_model == "someone/tiny-bert"  # the Hub id, not the folder name 'src'
    assert data.license == "apache-2.0" and data.language == ["en", "fr"] and "glue" in data.datasets
    assert (
        "- Base model: [`someone/tiny-bert`](https://huggingface.co/someone/tiny-bert) (read from `_name_or_path` in "
        "its config.json)" in card.text
    )
    assert f"- transformers {transformers.__version__}" in card.text and "- torch " in card.text
    assert "Labels, by id: 0 `negative`, 1 `positive`." in card.text


def test_unknown_is_said_never_invented(tmp_path):
    source = _source(tmp_path / "src", card=False, recorded=None)
    assert source_hub_id(source) is None and source_card_metadata(source)["license"] is None
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.base_model is None and card.data.license is None and card.data.language is None
    assert "- Base model: unknown (the source `src` is not a Hub id and records none)" in card.text
    assert "- Licence: unknown (no source card was found: check the source's terms)" in card.text
    assert "- Languages: unknown" in card.text


def test_a_hub_cache_folder_names_its_repository(tmp_path):
    folder = tmp_path / "hub" / "models--owner--tiny" / "snapshots" / "0123abc"
    _source(folder, card=False, recorded=None)
    assert source_hub_id(folder) == "owner/tiny"
    assert source_hub_id(tmp_path / "hub") is None  # not a model folder: nothing recorded


def test_name_or_path_naming_the_sources_own_base_is_not_its_id(tmp_path):
    """all-MiniLM-L6-v2's config records nreimers/MiniLM-L6-H384-uncased, the model it was trained from."""
    source = _source(tmp_path / "src", recorded="google-bert/bert-base-uncased")  # = its card's base_model
    assert source_hub_id(source) is None


def test_onnx_card_gets_the_base_model_of_the_folder_it_exports(tmp_path):
    pytest.importorskip("optimum.exporters.onnx")
    from hf_bort.exporters import export_onnx

    source = _source(tmp_path / "src")
    assert main(["convert", str(source), str(tmp_path / "bort")]) == 0
    export_onnx(str(tmp_path / "bort"), tmp_path / "onnx", task="text-classification", optimize=False)
    card = ModelCard.load(tmp_path / "onnx" / "README.md")
    assert card.data.base_model == "someone/tiny-bert" and card.data.license == "apache-2.0"
    assert "Labels, by id: 0 `negative`, 1 `positive`." in card.text


def test_compressed_card_widget_comes_from_the_data():
    report = json.loads((Path(__file__).resolve().parents[2] / "benchmarks/results/demo_report.json").read_text())
    report["data"]["examples"] = ["a gripping film", "dull and long", "fine"]
    data = compressed_card(report, "demo").hub_card_data()
    assert data.widget == [{"text": "a gripping film"}, {"text": "dull and long"}, {"text": "fine"}]
    report["task"] = "feature-extraction"
    data = compressed_card(report, "demo").hub_card_data()
    assert data.widget == [{"source_sentence": "a gripping film", "sentences": ["dull and long", "fine"]}]


def test_the_source_cards_strings_are_escaped_in_the_body(tmp_path):
    """Licence, languages and datasets come from the source's own card: user strings, escaped like the others."""
    source = _source(tmp_path / "src")
    hostile = SOURCE_CARD.replace("apache-2.0", "'<img src=x onerror=alert(1)>'").replace("- glue", "- '# Injected|x'")
    (source / "README.md").write_text(hostile)
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    text = ModelCard.load(tmp_path / "out" / "README.md").text
    assert "<img" not in text.replace("\\<img", "")
    assert "- Licence: \\<img src=x onerror=alert(1)\\>" in text
    assert "- Datasets of the source (its card): \\# Injected\\|x" in text
    assert not [line for line in text.splitlines() if line.startswith("# Injected")]
