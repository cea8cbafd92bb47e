"""`compress(task="feature-extraction")`: a tiny sentence-transformers model compressed end to end on texts only."""

from __future__ import annotations

import json

import pytest
import torch

from hf_bort import CompressionConfig, compress
from hf_bort.compress import pipeline
from hf_bort.ose.embedding import SentenceEmbeddingHead, embedding_agreement, embedding_loss
from tiny_sentence_transformers import tiny_sentence_transformer
from tiny_tasks import fast_settings

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")


def _config(source, dataset, out, **overrides):
    # the tiny runs keep task_epochs (the defaults raise them to 1000 steps, then stop on dev patience)
    settings = fast_settings(**{"embedding_min_steps": 0, "embedding_patience": 0, **overrides})
    return CompressionConfig(
        model=str(source), dataset=dataset, output_dir=str(out), task="feature-extraction", **settings
    )


@pytest.mark.parametrize("dense", [None, 8])
def test_compress_an_embedding_model_end_to_end(tmp_path, data_dir, dense):
    source = tiny_sentence_transformer(tmp_path / "st", dense=dense)
    # without a Dense: a given narrower shape (the projection back to the teacher's width); with one: the search
    candidate = {"candidate": "D1-A2-H24-I16-d8"} if dense is None else {}
    result = compress(_config(source, str(data_dir), tmp_path / "out", **candidate))
    out = tmp_path / "out"
    report = json.loads((out / "compression_report.json").read_text())
    assert report["task"] == "feature-extraction" and report["search"]["searched"] == (dense is not None)
    if dense is not None:
        assert report["search"]["objective"].startswith("dev cosine distance")
        assert all("dev_mean_cosine" in point for point in report["search"]["front"])
    else:
        assert report["student"]["config"]["hidden_size"] == 24
    student = report["student"]
    assert student["multiply_adds_ratio"] <= 0.6
    assert report["source"]["head_check_max_abs_difference"] < 1e-5
    for split in ("dev", "test"):
        agreement = student[split]
        assert set(agreement) >= {"mean_cosine", "nearest_neighbour_agreement", "spearman_pairwise"}
        assert -1 <= agreement["spearman_pairwise"] <= 1 and 0 <= agreement["nearest_neighbour_agreement"] <= 1
    assert student["test"]["texts"] == 32
    training = student["embedding_distillation"]
    assert student["dev"]["mean_cosine"] > 0.9 and training["steps"] == 12
    # scored on dev every epoch; the stage's dev numbers are the kept epoch's
    assert [entry["epoch"] for entry in training["dev_per_epoch"]] == [1, 2] and training["stopped"] == "min_epochs"
    assert student["dev"]["spearman_pairwise"] == pytest.approx(training["best_dev"]["spearman_pairwise"], abs=1e-6)
    assert report["reload"]["ok"] and not report["reload"]["hf_bort_imported_in_reload_process"]
    assert set(report["wall_s"]) >= set(pipeline.STAGES)
    # the student is a sentence-transformers folder: same module kinds, narrower pooling when H shrank
    kinds = [e["type"].rsplit(".", 1)[-1] for e in json.loads((out / "student" / "modules.json").read_text())]
    shrunk = student["config"]["hidden_size"] < 32
    # without a Dense of its own, a narrower student gets one back to the teacher's width (cosine to the teacher)
    assert kinds == ["Transformer", "Pooling", *(["Dense"] if dense or shrunk else []), "Normalize"]
    model = result.load_student()
    assert type(model).__name__ == "SentenceTransformer" and type(model[0].auto_model).__name__ == "BortModel"
    embeddings = model.encode(["the movie was good", "bad plot"], convert_to_tensor=True)
    assert embeddings.shape == (2, dense or 32)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert "test spearman_pairwise" in result.summary()


def test_embedding_mode_checks_before_any_training(tmp_path, tiny_source, data_dir):
    with pytest.raises(ValueError, match="`task` must be one of"):
        CompressionConfig(model="m", dataset="d", task="embeddings", **fast_settings())
    # labels are not read: text_column may even equal label_column
    CompressionConfig(model="m", dataset="d", task="feature-extraction", label_column="text", **fast_settings())
    with pytest.raises(ValueError, match="not a local sentence-transformers folder"):
        compress(_config(tiny_source, str(data_dir), tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    source = tiny_sentence_transformer(tmp_path / "st")
    with pytest.raises(ValueError, match="`text_column` 'sentence' is not a column"):
        compress(_config(source, str(data_dir), tmp_path / "out", text_column="sentence"))
    assert not (tmp_path / "out").exists()


def test_agreement_metrics():
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(20, 8, generator=generator)
    same = embedding_agreement(teacher, teacher)
    assert same["mean_cosine"] == pytest.approx(1.0) and same["nearest_neighbour_agreement"] == 1.0
    assert same["spearman_pairwise"] == pytest.approx(1.0)
    scaled = embedding_agreement(3 * teacher, teacher)  # cosine ignores scale
    assert scaled["spearman_pairwise"] == pytest.approx(1.0)
    noise = embedding_agreement(torch.randn(20, 8, generator=generator), teacher)
    assert noise["spearman_pairwise"] < 0.5 and noise["mean_cosine"] < 0.5
    assert embedding_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert embedding_loss(-teacher, teacher).item() == pytest.approx(2.0)


def test_head_reproduces_sentence_transformers_and_slices_its_dense(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st", dense=8, pooling_mode=("mean", "max"))
    model = st.SentenceTransformer(str(source), device="cpu")
    head = SentenceEmbeddingHead.from_model(model)
    features = model.tokenize(["the movie was good", "a dull plot"])
    with torch.no_grad():
        expected = model(dict(features))["sentence_embedding"]
        hidden = model[0].auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"])[0]
        assert torch.allclose(head(hidden, features["attention_mask"]), expected, atol=1e-6)
        kept = [0, 3, 5, 31]
        sliced = head.sliced(kept, 32)
        assert sliced.stages[1].linear.weight.shape == (8, 8)
        got = sliced(hidden[..., kept], features["attention_mask"])
        # equal to the full head on a hidden state that is zero outside the kept dims
        masked = torch.zeros_like(hidden)
        masked[..., kept] = hidden[..., kept]
        assert torch.allclose(got, head(masked, features["attention_mask"]), atol=1e-6)
    assert not any(p.requires_grad for p in head.parameters())


def test_embedding_distillation_moves_a_perturbed_student_towards_the_teacher(tmp_path):
    from transformers import AutoTokenizer

    from hf_bort.compress.embedding import distil_embeddings, encode
    from hf_bort.ose.extract import load_source_as_bort

    source = tiny_sentence_transformer(tmp_path / "st")
    teacher = load_source_as_bort(source).eval()
    head = SentenceEmbeddingHead.from_model(st.SentenceTransformer(str(source), device="cpu"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    student = load_source_as_bort(source)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in student.encoder.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    texts = [f"the movie {w} was {v}" for w in ("plot", "story", "acting", "film") for v in ("good", "bad", "dull")]
    target = encode(teacher, head, tokenizer, texts, 16)
    before = embedding_loss(encode(student, head, tokenizer, texts, 16), target).item()
    settings = dict(epochs=10, learning_rate=1e-3, batch_size=4, max_length=16, seed=0, dev_texts=texts[:5])
    record = distil_embeddings(student, head, target, texts, tokenizer, dev_teacher=target[:5], **settings)
    after = embedding_loss(encode(student, head, tokenizer, texts, 16), target).item()
    assert record["steps"] == 30 and after < 0.5 * before


def test_cli_parses_the_embedding_task():
    from hf_bort.compress.cli import parse

    config = parse(["st-folder", "--dataset", "texts/", "--task", "feature-extraction", "--measure-onnx", "false"])
    assert config.task == "feature-extraction" and config.model == "st-folder"
    with pytest.raises(SystemExit):
        parse(["st-folder", "--dataset", "texts/", "--task", "embeddings"])


def test_search_embedding_objective_needs_the_head(tmp_path):
    from hf_bort.ose import OSESearch

    source = tiny_sentence_transformer(tmp_path / "st")
    with pytest.raises(ValueError, match="embedding_head"):
        OSESearch(source, text_dataset=["a text"] * 64, objective="embedding", output_dir=tmp_path / "run")


@pytest.mark.slow
def test_compress_an_st_folder_whose_config_names_a_masked_lm(tmp_path, data_dir):
    """Issue 22 item 1, end to end: all-mpnet-base-v2 says MPNetForMaskedLM and ships no MLM head; compress used to
    fail with "'MaskedLMOutput' object has no attribute 'last_hidden_state'"."""
    source = tiny_sentence_transformer(tmp_path / "st")
    config = json.loads((source / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]
    (source / "config.json").write_text(json.dumps(config))
    result = compress(_config(source, str(data_dir), tmp_path / "out", candidate="D1-A2-H32-I16-d8"))
    assert result.report["source"]["head_check_max_abs_difference"] < 1e-5
