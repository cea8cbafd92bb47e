"""Issue 24: the relational embedding loss ("cosine+similarity") and the fused AdamW of embedding distillation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hf_bort import CompressionConfig, compress
from hf_bort.compress import embedding_steps
from hf_bort.ose import embedding as ose_embedding
from hf_bort.ose.embedding import embedding_loss, similarity_loss
from tiny_sentence_transformers import tiny_sentence_transformer
from tiny_tasks import fast_settings

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")

TEXTS = [f"the movie {w} was {v}" for w in ("plot", "story", "acting", "film") for v in ("good", "bad", "dull")]


def test_similarity_loss_on_hand_made_embeddings():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    teacher = torch.tensor([[1.0, 0.0], [3.0, 0.0], [1.0, 0.0]])  # every pair at cosine 1
    # student pairs: cos 0, 1/√2, 1/√2 (each twice off the diagonal); the teacher's: 1
    expected = (1.0 + 2 * (1 - 1 / math.sqrt(2)) ** 2) / 3
    assert similarity_loss(student, teacher).item() == pytest.approx(expected)
    assert embedding_loss(student, teacher).item() == pytest.approx((0 + 1 + (1 - 1 / math.sqrt(2))) / 3)
    # the same angles at other lengths: no loss; a rotation of the batch keeps its relations (cosine loss would not)
    assert similarity_loss(5 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)
    rotation = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert similarity_loss(student @ rotation, student).item() == pytest.approx(0.0, abs=1e-6)
    assert embedding_loss(student @ rotation, student).item() == pytest.approx(1.0)
    # other widths are fine (the matrices are n × n); one row has no pair: 0, with a gradient path
    assert similarity_loss(torch.randn(4, 3), torch.randn(4, 5)).item() > 0
    one = torch.ones(1, 2, requires_grad=True)
    value = similarity_loss(one, torch.ones(1, 2))
    value.backward()
    assert value.item() == 0.0 and one.grad is not None
    with pytest.raises(ValueError, match="as many student as teacher rows"):
        similarity_loss(torch.ones(3, 2), torch.ones(2, 2))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from transformers import AutoTokenizer

    from hf_bort.ose.embedding import SentenceEmbeddingHead
    from hf_bort.ose.extract import load_source_as_bort

    source = tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "st")
    teacher = load_source_as_bort(source).eval()
    head = SentenceEmbeddingHead.from_model(st.SentenceTransformer(str(source), device="cpu"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    return source, teacher, head, tokenizer


def _distil(parts, monkeypatch, **settings):
    """4 steps of distil_embeddings on a perturbed copy of the teacher; the two loss terms of every step recorded."""
    from hf_bort.ose.extract import load_source_as_bort

    source, teacher, head, tokenizer = parts
    student = load_source_as_bort(source)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in student.encoder.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    seen = {"cosine": [], "similarity": []}

    def spy(name, function):
        def wrapped(*args):
            value = function(*args)
            seen[name].append(value.item())
            return value

        return wrapped

    monkeypatch.setattr(ose_embedding, "embedding_loss", spy("cosine", embedding_loss))
    monkeypatch.setattr(ose_embedding, "similarity_loss", spy("similarity", similarity_loss))
    target = embedding_steps.encode(teacher, head, tokenizer, TEXTS, 16)
    record = embedding_steps.distil_embeddings(
        student, head, target, TEXTS, tokenizer, epochs=1.0, learning_rate=1e-3, batch_size=3, max_length=16, seed=0,
        dev_texts=TEXTS[:5], dev_teacher=target[:5], show_progress=False, **settings,
    )  # fmt: skip
    return record, seen


def test_the_training_loss_adds_the_weighted_similarity_term(parts, monkeypatch):
    record, seen = _distil(parts, monkeypatch, loss="cosine+similarity", similarity_weight=0.5)
    assert record["steps"] == 4 and len(seen["cosine"]) == 4 and len(seen["similarity"]) == 4
    steps = [c + 0.5 * s for c, s in zip(seen["cosine"], seen["similarity"], strict=True)]
    assert record["train_loss"] == pytest.approx(sum(steps) / 4)
    assert record["embedding_loss"] == "cosine+similarity"
    assert "+ 0.5 * mean squared difference" in record["loss"] and "similarity matrices" in record["loss"]


def test_the_cosine_loss_alone_by_default(parts, monkeypatch):
    record, seen = _distil(parts, monkeypatch)
    assert seen["similarity"] == [] and record["train_loss"] == pytest.approx(sum(seen["cosine"]) / 4)
    assert record["embedding_loss"] == "cosine"
    assert record["loss"] == "1 - cos(student, teacher) of the sentence embeddings"


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(loss="similarity"), "`loss` must be one of"),
        (dict(loss="cosine+similarity"), "`similarity_weight` must be a number > 0"),
        (dict(loss="cosine", similarity_weight=1.0), "`similarity_weight` applies to loss='cosine\\+similarity' only"),
    ],
)
def test_distil_embeddings_refuses_a_bad_loss_before_training(parts, monkeypatch, settings, message):
    with pytest.raises(ValueError, match=message):
        _distil(parts, monkeypatch, **settings)


def test_the_optimizer_is_fused_adamw_where_torch_allows(monkeypatch):
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    optimizer, name = embedding_steps.adamw(parameters, 1e-3, torch.device("cpu"))
    assert name == "AdamW (fused)" and optimizer.defaults["fused"] is True  # torch 2.13 here (fused on the CPU)
    monkeypatch.setattr(torch, "__version__", "2.3.1+cpu")  # before torch 2.4: no fused AdamW on the CPU
    optimizer, name = embedding_steps.adamw(parameters, 1e-3, torch.device("cpu"))
    assert name == "AdamW (torch default implementation)" and not optimizer.defaults["fused"]


def _config(**overrides):
    settings = fast_settings(**overrides)
    settings.setdefault("task", "feature-extraction")
    return CompressionConfig(model="st-folder", dataset="texts/", **settings)


def test_embedding_loss_defaults_are_resolved_and_saved():
    config = _config()
    assert (config.embedding_loss, config.embedding_similarity_weight) == ("cosine", None)
    relational = _config(embedding_loss="cosine+similarity")
    assert relational.embedding_similarity_weight == 1.0
    saved = relational.to_dict()
    assert (saved["embedding_loss"], saved["embedding_similarity_weight"]) == ("cosine+similarity", 1.0)
    assert _config(embedding_loss="cosine+similarity", embedding_similarity_weight=2.0).differences(saved) == [
        "embedding_similarity_weight"
    ]
    classification = CompressionConfig(model="m", dataset="d", **fast_settings())
    assert classification.embedding_loss is None and classification.embedding_similarity_weight is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(embedding_loss="mse"), "`embedding_loss` must be one of \\['cosine', 'cosine\\+similarity'\\]"),
        (dict(embedding_similarity_weight=0.5), "`embedding_similarity_weight` applies to embedding_loss='cosine\\+"),
        (dict(embedding_loss="cosine+similarity", embedding_similarity_weight=0.0), "must be a finite number > 0"),
        (dict(embedding_loss="cosine+similarity", embedding_similarity_weight=float("nan")), "finite number > 0"),
        (dict(embedding_loss="cosine+similarity", embedding_similarity_weight=True), "finite number > 0"),
        (dict(task="text-classification", embedding_loss="cosine"), "`embedding_loss` applies to task='feature-ex"),
        (
            dict(task="text-classification", embedding_similarity_weight=1.0),
            "`embedding_similarity_weight` applies to task='feature-extraction'",
        ),
    ],
)
def test_bad_embedding_loss_settings_are_refused_when_the_config_is_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_the_cli_parses_the_embedding_loss():
    from hf_bort.compress.cli import parse

    argv = ["st", "--dataset", "t/", "--task", "feature-extraction", "--measure-onnx", "false"]
    config = parse([*argv, "--embedding-loss", "cosine+similarity", "--embedding-similarity-weight", "0.5"])
    assert (config.embedding_loss, config.embedding_similarity_weight) == ("cosine+similarity", 0.5)
    with pytest.raises(ValueError, match="`embedding_loss` applies to task='feature-extraction'"):
        parse(["m", "--dataset", "t/", "--measure-onnx", "false", "--embedding-loss", "cosine"])


def test_compress_an_embedding_model_with_the_similarity_loss(tmp_path, data_dir):
    source = tiny_sentence_transformer(tmp_path / "st")
    settings = fast_settings(embedding_min_steps=0, embedding_patience=0, embedding_loss="cosine+similarity")
    config = CompressionConfig(
        model=str(source), dataset=str(data_dir), output_dir=str(tmp_path / "out"), task="feature-extraction",
        candidate="D1-A2-H24-I16-d8", reload_check=False, **settings,
    )  # fmt: skip
    compress(config)
    report = json.loads((tmp_path / "out" / "compression_report.json").read_text())
    training = report["student"]["embedding_distillation"]
    assert training["embedding_loss"] == "cosine+similarity" and training["optimizer"] == "AdamW (fused)"
    assert training["loss"].startswith("1 - cos(student, teacher) of the sentence embeddings + 1.0 * mean squared")
    assert training["steps"] == 12 and report["student"]["dev"]["mean_cosine"] > 0.9
    saved = json.loads((tmp_path / "out" / "compression_config.json").read_text())
    assert (saved["embedding_loss"], saved["embedding_similarity_weight"]) == ("cosine+similarity", 1.0)


def test_compress_embeddings_continue_from_reruns_only_the_embedding_distillation(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import compress_embeddings
    import compress_task

    first = tmp_path / "cosine"
    first.mkdir()
    _config(output_dir=str(first)).save(first / "compression_config.json")
    stages = {name: {"done": True} for name in ("data", "source", "search", "distill", "task", "augment")}
    (first / "progress.json").write_text(json.dumps({"stages": stages, "wall_s": {k: 1.0 for k in stages}}))
    (first / "student-distilled").mkdir()
    (first / "student").mkdir()  # the old embedding student: deleted in the copy, kept in the finished run
    fields = compress_embeddings.EMBEDDING_TASK_FIELDS

    other = _config(output_dir=str(tmp_path / "other"), embedding_loss="cosine+similarity", distill_epochs=2.0)
    with pytest.raises(SystemExit, match=r"other settings: \['distill_epochs'\]"):
        compress_task.continue_from(first, other, "task", fields)
    relational = _config(output_dir=str(tmp_path / "similarity"), embedding_loss="cosine+similarity")
    with pytest.raises(SystemExit, match=r"other settings: \['embedding_loss', 'embedding_similarity_weight'\]"):
        compress_task.continue_from(first, relational, "task")  # the classification fields only: refused
    assert compress_task.continue_from(first, relational, "task", fields) == ["data", "source", "search", "distill"]
    again = tmp_path / "similarity"
    assert list(json.loads((again / "progress.json").read_text())["stages"]) == ["data", "source", "search", "distill"]
    assert (again / "student-distilled").is_dir() and not (again / "student").exists() and (first / "student").is_dir()
    assert json.loads((again / "compression_config.json").read_text())["embedding_loss"] == "cosine+similarity"
