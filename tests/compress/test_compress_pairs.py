"""`compress` on text pairs (`text_pair_column`, `PairClassificationTask`): the pair reaches every stage, the saved
student, its ONNX export and its card; bad pair columns are refused before any work."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from datasets import Dataset

from hf_bort import CompressionConfig, compress
from hf_bort.compress import recipe
from hf_bort.compress.tasks import task_for
from hf_bort.compress.tasks.classification import ClassificationTask
from hf_bort.compress.tasks.pairs import PairClassificationTask
from hf_bort.data import load_task_data
from tiny_tasks import FILLER, fast_settings, make_rows


def _pair_rows(n: int, seed: int) -> list[dict]:
    """Premises of filler words; the label is carried by a cue word in the hypothesis only (learnable from pairs)."""
    rng = random.Random(seed + 100)
    rows = []
    for row in make_rows(n, seed):
        premise = " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, 6)))
        rows.append({"premise": premise, "hypothesis": row["text"], "label": row["label"]})
    return rows


@pytest.fixture
def pair_dir(tmp_path):
    path = tmp_path / "pairs"
    path.mkdir()
    for name, n, seed in (("train", 96, 0), ("validation", 32, 1), ("test", 32, 2)):
        with open(path / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["premise", "hypothesis", "label"])
            writer.writeheader()
            writer.writerows(_pair_rows(n, seed))
    return path


def _config(tiny_source, dataset, out, **overrides) -> CompressionConfig:
    settings = {"text_column": "premise", "text_pair_column": "hypothesis", **fast_settings(**overrides)}
    return CompressionConfig(model=str(tiny_source), dataset=dataset, output_dir=str(out), **settings)


def _has_onnx() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import optimum.exporters.onnx  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_pair_column_picks_the_pair_task(tmp_path, tiny_source):
    assert type(task_for(_config(tiny_source, "d", tmp_path / "out"))) is PairClassificationTask
    single = CompressionConfig(model=str(tiny_source), dataset="d", output_dir=str(tmp_path / "o"), **fast_settings())
    assert type(task_for(single)) is ClassificationTask


def test_pairs_are_tokenised_as_pairs_and_fingerprinted(tmp_path, tiny_source, pair_dir, bert_tok):
    data = load_task_data(_config(tiny_source, str(pair_dir), tmp_path / "out"))
    assert data.train.column_names == ["text", "text_pair", "label"]
    assert data.train[0]["text_pair"] == _pair_rows(96, 0)[0]["hypothesis"]
    encoded = recipe.tokenise(data.train.select(range(4)), bert_tok, 32, pair_column="text_pair")
    assert all(1 in types for types in encoded["token_type_ids"])  # the second text is segment 1
    sep = bert_tok.sep_token_id
    assert all(ids.count(sep) == 2 for ids in encoded["input_ids"])  # [CLS] a [SEP] b [SEP]
    # the fingerprint (resume check) covers the second texts
    other = data.train.map(lambda row: {"text_pair": row["text_pair"] + " again"})
    changed = type(data)(other, data.validation, data.test, data.label_names)
    assert changed.fingerprint() != data.fingerprint()


def test_search_rows_are_pairs(bert_tok):
    from hf_bort.ose.inputs import labelled_rows

    split = Dataset.from_dict({"text": ["a b", "c d"], "text_pair": ["e", "f"], "label": [0, 1]})
    assert labelled_rows(split, "text", "label", "task_dataset", "text_pair") == [(("a b", "e"), 0), (("c d", "f"), 1)]
    with pytest.raises(ValueError, match="no column 'other'"):
        labelled_rows(split, "text", "label", "task_dataset", "other")
    batch = recipe.encode(bert_tok, [["a b", "e"], ["c d", "f"]], 16)
    assert (batch["token_type_ids"] == 1).any()


@pytest.mark.slow
def test_compress_pairs_end_to_end(tmp_path, tiny_source, pair_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    onnx = _has_onnx()
    out = tmp_path / "out"
    settings = dict(finetune_epochs=20.0, finetune_learning_rate=2e-3, task_epochs=6.0, task_learning_rate=2e-3)
    settings["augment"] = "auto"  # compress's default: recorded as skipped for pairs, with the reason
    result = compress(_config(tiny_source, str(pair_dir), out, measure_onnx=onnx, **settings))
    report = json.loads((out / "compression_report.json").read_text())
    assert report["augment"]["skipped"].endswith("not supported with `text_pair_column` (text pairs)")
    assert report["augment"]["mode"] == "auto" and report["augment"]["teacher_calls"] == 0
    assert report["inputs"] == {"text_column": "premise", "text_pair_column": "hypothesis"}
    assert (
        report["data"]["text_pair_column"] == "hypothesis" and report["settings"]["text_pair_column"] == "hypothesis"
    )
    rows = _pair_rows(32, 1)
    assert report["data"]["examples"][0] == [rows[0]["premise"], rows[0]["hypothesis"]]
    # the cue is only in the second text: accuracies this high need the pair
    assert report["source"]["dev"]["accuracy"] > 0.8 and report["student"]["dev"]["accuracy"] > 0.7
    assert report["reload"]["ok"] and report["reload"]["texts"] == 16

    # the saved tokenizer and model, fed pairs, give the dev accuracy the report says
    student_dir = result.student_path
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    model = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    premises, hypotheses = [r["premise"] for r in rows], [r["hypothesis"] for r in rows]
    with torch.no_grad():
        inputs = tokenizer(premises, hypotheses, padding=True, truncation=True, max_length=16, return_tensors="pt")
        logits = model(**inputs).logits
    accuracy = float((logits.argmax(-1) == torch.tensor([r["label"] for r in rows])).float().mean())
    assert accuracy == pytest.approx(report["student"]["dev"]["accuracy"])
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    for i in range(3):
        predicted = classify({"text": premises[i], "text_pair": hypotheses[i]})
        predicted = predicted[0] if isinstance(predicted, list) else predicted
        assert predicted["label"] == model.config.id2label[int(logits[i].argmax())]

    card = (student_dir / "README.md").read_text()
    assert 'classifier({"text": ' in card and '"text_pair": ' in card and "tokenizer([" in card
    assert "text-pair classification" in card and "`hypothesis`" in card
    from huggingface_hub import ModelCard

    widget = ModelCard.load(student_dir / "README.md").data.widget
    assert widget[0] == {"text": rows[0]["premise"], "text_pair": rows[0]["hypothesis"]}

    if onnx:  # the export keeps token types, validated and agreeing on pairs
        import onnxruntime as ort

        assert report["latency"]["inputs"] == "text pairs"
        session = ort.InferenceSession(str(student_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        assert "token_type_ids" in names
        feed = {name: inputs[name].numpy() for name in names}
        onnx_logits = torch.from_numpy(session.run(None, feed)[0])
        assert (onnx_logits - logits).abs().max() < 1e-4
        assert (onnx_logits.argmax(-1) == logits.argmax(-1)).all()


@pytest.mark.parametrize(
    ("split", "change", "message"),
    [
        ("test", "drop", "`text_pair_column` 'hypothesis' is not a column of the 'test' split"),
        ("validation", "empty", "'validation' split's 'hypothesis' \\(`text_pair_column`\\) must hold non-empty"),
    ],
)
def test_a_missing_or_empty_pair_column_is_refused_before_any_work(
    tmp_path, tiny_source, pair_dir, split, change, message
):
    file = pair_dir / f"{split}.csv"
    rows = list(csv.DictReader(file.open()))
    if change == "drop":
        rows = [{k: v for k, v in row.items() if k != "hypothesis"} for row in rows]
    else:
        rows[3]["hypothesis"] = " "
    with open(file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        compress(_config(tiny_source, str(pair_dir), out))
    assert not (out / "progress.json").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"text_pair_column": ""}, "`text_pair_column` must be a non-empty string or None"),
        ({"text_pair_column": "premise"}, "`text_pair_column` 'premise' must differ from `text_column`"),
        ({"text_pair_column": "label"}, "`text_pair_column` 'label' must differ from `label_column`"),
        ({"task": "feature-extraction"}, "`text_pair_column` is for task='text-classification'"),
        ({"unlabelled_dataset": "texts/"}, "not supported with `text_pair_column`"),
        ({"augment_budget": 8}, "not supported with `text_pair_column`"),
        ({"augment": "always"}, "'always' cannot run: augmentation takes single texts"),
    ],
)
def test_pair_column_settings_are_checked(tmp_path, overrides, message):
    settings = {"text_column": "premise", "text_pair_column": "hypothesis", **overrides}
    with pytest.raises(ValueError, match=message):
        CompressionConfig(model="m", dataset="d", output_dir=str(tmp_path / "o"), measure_onnx=False, **settings)


def _reranker(path, pair_dir, train_steps: int) -> None:
    """A tiny single-output cross-encoder (num_labels=1, a relevance logit) fine-tuned here with BCE on `pair_dir`'s
    train pairs for `train_steps` steps (0: random head), saved with its tokenizer in `path`."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from tiny_shapes import TINY_SHAPE
    from tiny_tokenizers import bert_tokenizer

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=1))
    bert_tokenizer(path)  # writes vocab.txt
    tokenizer = BertTokenizerFast.from_pretrained(path)
    rows = list(csv.DictReader((pair_dir / "train.csv").open()))
    inputs = tokenizer(
        [r["premise"] for r in rows],
        [r["hypothesis"] for r in rows],
        padding=True,
        truncation=True,
        max_length=16,
        return_tensors="pt",
    )
    gold = torch.tensor([float(r["label"]) for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(train_steps):
        batch = slice((step * 16) % len(rows), (step * 16) % len(rows) + 16)
        logits = model(**{k: v[batch] for k, v in inputs.items()}).logits[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, gold[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)


def _rewrite_labels(pair_dir, split: str, label) -> None:
    file = pair_dir / f"{split}.csv"
    rows = list(csv.DictReader(file.open()))
    for i, row in enumerate(rows):
        row["label"] = label(i, row["label"])
    with open(file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (lambda i, label: str(i % 3), "`label_column` 'label': Labels \\[2\\] do not fit.*binary relevance labels"),
        (lambda i, label: ["no", "yes"][int(label)], "`label_column` 'label' holds strings.*binary relevance"),
    ],
)
def test_a_single_output_cross_encoder_needs_binary_labels(tmp_path, pair_dir, label, message):
    path = tmp_path / "reranker"
    _reranker(path, pair_dir, train_steps=0)
    for split in ("train", "validation", "test"):
        _rewrite_labels(pair_dir, split, label)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        compress(_config(path, str(pair_dir), out))
    assert not (out / "progress.json").exists()


def test_a_single_output_cross_encoder_refuses_a_three_name_class_label(tmp_path):
    from datasets import ClassLabel, DatasetDict, Features, Value

    from hf_bort.compress.relevance import binary_relevance_data

    features = Features(
        {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=list("abc"))}
    )
    rows = {"premise": ["p q", "r s"] * 4, "hypothesis": ["good", "bad"] * 4, "label": [0, 1] * 4}
    path = tmp_path / "three"
    DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(path)
    config = _config(tmp_path / "m", str(path), tmp_path / "out")
    with pytest.raises(ValueError, match="`label_column` 'label' has 3 classes.*binary relevance"):
        binary_relevance_data(config)


def test_compress_a_single_output_reranker_end_to_end(tmp_path, pair_dir):
    """A fine-tuned single-logit cross-encoder (an ms-marco-style reranker) is compressed as it is: the student keeps
    one output and the source's id2label, the logit is read as a Bernoulli (dev metrics with `logit > 0`), the reload
    and ONNX checks compare the logits, and the card reads the score through a sigmoid."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    onnx = _has_onnx()
    source = tmp_path / "reranker"
    _reranker(source, pair_dir, train_steps=60)
    out = tmp_path / "out"
    settings = dict(task_epochs=6.0, task_learning_rate=3e-3, weak_teacher_margin=0.1)
    result = compress(_config(source, str(pair_dir), out, measure_onnx=onnx, **settings))
    report = json.loads((out / "compression_report.json").read_text())
    assert report["data"]["single_output"] is True and report["data"]["label_names"] == ["0", "1"]
    assert not report["source"]["finetuned_here"] and not report["source"]["weak"]  # the teacher as it is, sound
    assert report["source"]["dev"]["accuracy"] > 0.8  # logit > 0 on dev; argmax of one logit would be 0.5
    assert 0 <= report["student"]["dev"]["accuracy"] <= 1 and "macro_f1" in report["student"]["dev"]
    assert report["student"]["dev"]["accuracy"] > 0.7
    assert report["reload"]["ok"]
    assert report["source"]["test"]["rows"] == 32 and report["student"]["test"]["accuracy"] > 0.5  # logit > 0

    student_dir = result.student_path
    model = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    source_config = AutoModelForSequenceClassification.from_pretrained(source).config
    assert model.config.num_labels == 1 and model.config.id2label == source_config.id2label
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    rows = _pair_rows(32, 1)
    premises, hypotheses = [r["premise"] for r in rows], [r["hypothesis"] for r in rows]
    with torch.no_grad():
        inputs = tokenizer(premises, hypotheses, padding=True, truncation=True, max_length=16, return_tensors="pt")
        logits = model(**inputs).logits
    assert logits.shape == (32, 1)
    accuracy = float(((logits[:, 0] > 0).long() == torch.tensor([r["label"] for r in rows])).float().mean())
    assert accuracy == pytest.approx(report["student"]["dev"]["accuracy"])
    score = pipeline("text-classification", model=model, tokenizer=tokenizer)(
        {"text": premises[0], "text_pair": hypotheses[0]}
    )
    score = score[0] if isinstance(score, list) else score
    assert score["score"] == pytest.approx(float(torch.sigmoid(logits[0, 0])), abs=1e-5)

    card = (student_dir / "README.md").read_text()
    assert "sigmoid of its relevance logit" in card and "logits[:, 0].sigmoid()" in card
    assert "logits.argmax(-1)" not in card
    if onnx:
        import onnxruntime as ort

        session = ort.InferenceSession(str(student_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
        feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
        assert (torch.from_numpy(session.run(None, feed)[0]) - logits).abs().max() < 1e-4


def test_the_search_setting_is_checked_and_onnx_validation_takes_pairs(bert_tok):
    from hf_bort.exporters.validation import validation_inputs
    from hf_bort.ose import OSEConfig

    with pytest.raises(ValueError, match="`text_pair_column` 'text' must differ"):
        OSEConfig(text_pair_column="text")
    with pytest.raises(ValueError, match="`text_pair_column` must be a non-empty string or None"):
        OSEConfig(text_pair_column=" ")
    inputs = validation_inputs(None, "text-classification", bert_tok, [("a b", "c"), ("d", "e f"), ("g", "h")])
    assert (inputs["token_type_ids"] == 1).any() and (inputs["input_ids"] == bert_tok.sep_token_id).sum() == 6
