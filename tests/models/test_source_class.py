"""Issue 22 item 1: the class of a source is decided from the weights it ships, not from `architectures`."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import transformers

from hf_bort import BortForMaskedLM, BortModel, convert_to_bort, max_output_difference
from hf_bort.models.source_class import checkpoint_weight_names, load_source_model, source_model_class
from hf_bort.ose.extract import load_source_as_bort
from tiny_families import MPNET
from tiny_shapes import TINY_SHAPE


def _encoder_saved_as_mlm(path, *, pooler: bool = True, safe: bool = True):
    """A tiny MPNet encoder saved as sentence-transformers do (no prefix, pooler kept) whose config.json says
    `MPNetForMaskedLM`, as all-mpnet-base-v2's does."""
    torch.manual_seed(0)
    model = transformers.MPNetModel(transformers.MPNetConfig(**MPNET), add_pooling_layer=pooler).eval()
    model.save_pretrained(path, safe_serialization=safe)
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["MPNetForMaskedLM"]
    (path / "config.json").write_text(json.dumps(config))
    return model


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch-bin"])
def test_mlm_architectures_without_head_converts_to_the_encoder_with_its_pooler(tmp_path, batch, caplog, safe):
    source = _encoder_saved_as_mlm(tmp_path / "src", safe=safe)
    with caplog.at_level(logging.WARNING, logger="hf_bort.models.source_class"):
        bort = convert_to_bort(tmp_path / "src").eval()
    assert type(bort) is BortModel  # not BortForMaskedLM with a random head
    assert bort.pooler is not None  # the trained pooler is kept
    assert torch.equal(bort.pooler.dense.weight, source.pooler.dense.weight)
    assert max_output_difference(source, bort, batch) < 1e-5  # pooler_output included
    assert "MPNetForMaskedLM" in caplog.text and "no weights for its head" in caplog.text


def test_extract_search_and_compress_load_the_encoder(tmp_path, batch):
    """`load_source_as_bort` (extract, search, compress --task feature-extraction) gets an encoder whose output has
    `last_hidden_state`; it used to be a masked LM ('MaskedLMOutput' object has no attribute 'last_hidden_state')."""
    _encoder_saved_as_mlm(tmp_path / "src")
    teacher = load_source_as_bort(tmp_path / "src")
    assert type(teacher) is BortModel
    assert teacher(**batch).last_hidden_state.shape == (2, 9, MPNET["hidden_size"])


def test_convert_command_saves_the_encoder(tmp_path, capsys):
    from hf_bort.cli import main
    from tiny_tokenizers import bert_tokenizer

    _encoder_saved_as_mlm(tmp_path / "src")
    bert_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "src")
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["class"] == "BortModel" and report["saved"]
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["architectures"] == ["BortModel"]
    assert "BortForMaskedLM" not in (tmp_path / "out" / "README.md").read_text()


def test_encoder_without_pooler_weights_gets_no_pooler(tmp_path):
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**TINY_SHAPE), add_pooling_layer=False).save_pretrained(tmp_path)
    model = load_source_model(tmp_path)
    assert type(model) is transformers.BertModel and model.pooler is None
    assert convert_to_bort(tmp_path).pooler is None  # no random pooler


def test_a_head_with_weights_is_kept(tmp_path, batch):
    torch.manual_seed(0)
    source = transformers.BertForMaskedLM(transformers.BertConfig(**TINY_SHAPE)).eval()
    source.save_pretrained(tmp_path)
    names, found = checkpoint_weight_names(tmp_path)
    assert found.name == "model.safetensors" and "cls.predictions.transform.dense.weight" in names
    bort = convert_to_bort(tmp_path)
    assert isinstance(bort, BortForMaskedLM)
    assert max_output_difference(source, bort, batch) < 1e-5


def test_decision_from_names_and_shard_index(tmp_path):
    config = transformers.BertConfig(**TINY_SHAPE, architectures=["BertForSequenceClassification"])
    body = {"bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight"}
    assert source_model_class(config, body | {"classifier.weight"}).model_class.__name__ == (
        "BertForSequenceClassification"
    )
    choice = source_model_class(config, body)
    assert choice.model_class is transformers.BertModel and choice.init_kwargs == {"add_pooling_layer": True}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(body, "a")}))
    assert checkpoint_weight_names(tmp_path)[0] == body


def test_no_weights_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors.*pytorch_model.bin"):
        checkpoint_weight_names(tmp_path)


def test_a_bort_classifier_is_loaded_with_its_head(tmp_path):
    """hf_bort's own classes are named in `architectures` too (compress takes a Bort classifier as its source)."""
    from hf_bort import BortConfig, BortForSequenceClassification
    from hf_bort.compress.checks import source_kind

    BortForSequenceClassification(BortConfig(**TINY_SHAPE, num_labels=2)).save_pretrained(tmp_path / "cls")
    assert type(load_source_model(tmp_path / "cls")) is BortForSequenceClassification
    assert source_kind(str(tmp_path / "cls"))[1] is True
    _encoder_saved_as_mlm(tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    config["architectures"] = ["MPNetForSequenceClassification"]  # named, but no classifier weights
    (tmp_path / "enc" / "config.json").write_text(json.dumps(config))
    # named, no classifier weights: still a classifier source, which compress then refuses naming the missing tensors
    # (issue 19 item 4: never a teacher with a random head; tests/compress/test_sources_and_labels.py)
    assert source_kind(str(tmp_path / "enc"))[1] is True
