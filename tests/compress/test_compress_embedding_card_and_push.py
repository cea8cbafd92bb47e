"""`compress(task="feature-extraction")` writes the embedding student's card from its report and can push it."""

from __future__ import annotations

import importlib.util
import json

import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard

from hf_bort import CompressionConfig, compress
from hf_bort.cards import compressed_card
from hf_bort.cards.builders import complete_from_folder
from hf_bort.compress import embedding_steps, pipeline
from hf_bort.hub import HubPushError
from hf_bort.ose import OSESearch
from tiny_sentence_transformers import tiny_sentence_transformer
from tiny_tasks import fast_settings

pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")
# The ONNX export (and its copy into the student folder) is checked where the onnx extra is installed.
WITH_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "optimum"))
SPLITS = (("dev", "validation"), ("test", "test"))


def _config(source, data_dir, out, **overrides):
    return CompressionConfig(
        model=str(source), dataset=str(data_dir), output_dir=str(out), task="feature-extraction", **overrides
    )


def _fake_hub(monkeypatch) -> list:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    commits = []
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "me"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **k: None)
    monkeypatch.setattr(HfApi, "create_branch", lambda *a, **k: pytest.fail("no revision was asked for"))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **k: commits.append(operations))
    return commits


def test_embedding_student_gets_its_card_and_is_pushed(tmp_path, data_dir, monkeypatch):
    commits = _fake_hub(monkeypatch)
    source = tiny_sentence_transformer(tmp_path / "st", dense=8)
    settings = fast_settings(measure_onnx=WITH_ONNX, push_to_hub=True, hub_model_id="me/tiny-embedder")
    result = compress(_config(source, data_dir, tmp_path / "out", **settings))
    out, report = tmp_path / "out", result.report
    student = out / "student"
    card = ModelCard.load(student / "README.md")
    data = card.data
    # metadata as sentence-transformers models have it on the Hub, and it round-trips through the YAML
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    tags = set(data.tags)
    assert {"hf_bort", "bort", "compressed", "bert", "sentence-transformers", "feature-extraction"} <= tags
    assert "sentence-similarity" in tags and "extracted" not in tags
    assert ("onnx" in tags) == WITH_ONNX
    assert data.model_name == "tiny-embedder" and data.base_model is None  # a local source is no base_model
    examples = report["data"]["examples"]  # dev texts of the run's data: the widget (issue 22 item 2)
    assert len(examples) == 3 and data.widget == [{"source_sentence": examples[0], "sentences": examples[1:]}]
    saved = json.loads((out / "compression_report.json").read_text())
    built = complete_from_folder(compressed_card(saved, "tiny-embedder"), student).hub_card_data()
    assert data.to_dict() == built.to_dict()
    # the model-index holds the student's agreement with the teacher, the report's numbers
    values = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    expected = {
        (name, key): report["student"][split][key]
        for split, name in SPLITS
        for key in pipeline.AGREEMENT_METRICS
        if report["student"][split][key] is not None
    }
    assert values == expected and len(values) == 6
    assert {r.task_type for r in data.eval_results} == {"sentence-similarity"}
    assert set(data.metrics) == set(pipeline.AGREEMENT_METRICS)
    text = card.text
    student_report = report["student"]
    spearman = values[("test", "spearman_pairwise")]
    assert f"| test Spearman of pairwise similarities (32 texts) | reference | {spearman:.4f} |" in text
    assert f"{student_report['dev']['mean_cosine']:.4f}" in text
    assert f"{student_report['parameters']:,}" in text and f"{report['source']['parameters']:,}" in text
    assert f"{student_report['encoder_multiply_adds']:,} (× {student_report['multiply_adds_ratio']:.3f})" in text
    assert f"{report['latency']['pytorch']['student']['p50_ms']:.2f} ms" in text
    assert f"**{student_report['shape']}** (chosen)" in text and "Dev mean cosine (search)" in text
    front = [line for line in text.splitlines() if line.startswith(("| D1", "| D2", "| **D"))]
    assert len(front) == len(report["search"]["front"]) and "None" not in "".join(front)
    assert text.index("SentenceTransformer(") < text.index("AutoModel.from_pretrained(")  # its own library first
    assert f"Embedding distillation: {student_report['embedding_distillation']['loss']}" in text
    training = student_report["embedding_distillation"]  # the defaults: 1000 steps capped by 10 epochs, patience 2
    assert training["stopped"] in ("patience", "max_epochs") and training["min_epochs"] == training["max_epochs"] == 10
    assert f"epoch {training['best_epoch']:g} kept (best dev spearman_pairwise" in text
    assert "Transformer → Pooling → Dense → Normalize" in text
    assert 'SentenceTransformer("me/tiny-embedder", trust_remote_code=True)' in text
    assert "not trained after extraction" not in text.lower()  # no intermediate extraction card left behind
    assert ("ORTModelForFeatureExtraction" in text) == WITH_ONNX
    assert (student / "onnx" / "model.onnx").is_file() == WITH_ONNX
    assert json.loads((student / "compression_report.json").read_text())["student"] == saved["student"]
    plot = report["search"].get("plot")
    assert (student / "front.png").is_file() == bool(plot) and ("front.png" in text) == bool(plot)
    # the student folder is pushed in one commit, every file of it, the card's snippets pointing at the repo
    (operations,) = commits
    pushed = sorted(op.path_in_repo for op in operations)
    assert pushed == sorted(p.relative_to(student).as_posix() for p in student.rglob("*") if p.is_file())
    assert {"README.md", "model.safetensors", "modeling_bort.py", "modules.json", "compression_report.json"} <= set(
        pushed
    )
    assert any(name.endswith("_Dense/config.json") for name in pushed)
    assert report["hub"]["repo_id"] == "me/tiny-embedder" and report["hub"]["files"] == pushed
    assert saved["hub"] == report["hub"]
    readme = next(op for op in operations if op.path_in_repo == "README.md").path_or_fileobj.decode()
    assert 'SentenceTransformer("me/tiny-embedder", trust_remote_code=True)' in readme
    # the card in the folder does not stop it loading as a SentenceTransformer
    assert result.load_student().encode(["a good film"]).shape == (1, 8)
    if WITH_ONNX:  # the ONNX sits where sentence-transformers' backend="onnx" looks for it (issue 22 item 3)
        from sentence_transformers import SentenceTransformer

        texts = ["a good film", "a dull plot and bad acting"]
        onnx = SentenceTransformer(str(student), device="cpu", backend="onnx").encode(texts, convert_to_tensor=True)
        torch_embeddings = result.load_student().encode(texts, convert_to_tensor=True)
        assert (onnx - torch_embeddings).abs().max() < 1e-4


def test_embedding_push_is_checked_before_any_work(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched"))
    monkeypatch.setattr(embedding_steps, "distil_embeddings", lambda *a, **k: pytest.fail("trained"))
    source = tiny_sentence_transformer(tmp_path / "st")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config(source, data_dir, tmp_path / "out", **fast_settings(push_to_hub=True, hub_model_id="me/x"))
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        compress(config)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(HubPushError, match="no token"):
        compress(config)
    assert not (tmp_path / "out").exists()


def test_a_converted_sentence_transformers_folder_is_listed_as_one(tmp_path):
    from hf_bort.cli import main

    source = tiny_sentence_transformer(tmp_path / "st")
    assert main(["convert", str(source), str(tmp_path / "bort-st")]) == 0
    card = ModelCard.load(tmp_path / "bort-st" / "README.md")
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "sentence-similarity"
    assert {"converted", "sentence-transformers", "feature-extraction"} <= set(card.data.tags)
    assert 'SentenceTransformer("bort-st", trust_remote_code=True)' in card.text
