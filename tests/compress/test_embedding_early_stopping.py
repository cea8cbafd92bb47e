"""Issue 24: embedding distillation scored on dev every epoch, the best epoch kept, early stopping, step minimum."""

from __future__ import annotations

import pytest
import torch

from hf_bort import CompressionConfig
from hf_bort.compress import embedding_steps
from hf_bort.ose import embedding as ose_embedding
from tiny_sentence_transformers import tiny_sentence_transformer
from tiny_tasks import fast_settings

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")

TEXTS = [f"the movie {w} was {v}" for w in ("plot", "story", "acting", "film") for v in ("good", "bad", "dull")]
DEV = ["a fine story", "bad acting", "the plot was dull", "great film", "not fun"]
BATCH = 4  # 12 texts: 3 steps per epoch


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from transformers import AutoTokenizer

    from hf_bort.ose.embedding import SentenceEmbeddingHead
    from hf_bort.ose.extract import load_source_as_bort

    source = tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "st", dense=8)
    teacher = load_source_as_bort(source).eval()
    head = SentenceEmbeddingHead.from_model(st.SentenceTransformer(str(source), device="cpu"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    return source, teacher, head, tokenizer


def _student_and_head(parts):
    from hf_bort.ose.embedding import SentenceEmbeddingHead
    from hf_bort.ose.extract import load_source_as_bort

    source, _, _, _ = parts
    student = load_source_as_bort(source)
    head = SentenceEmbeddingHead.from_model(st.SentenceTransformer(str(source), device="cpu"))
    for stage in head.stages:  # the Dense trains with the encoder, as in EmbeddingTask.train_student
        if type(stage).__name__ == "Dense":
            stage.requires_grad_(True)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in student.encoder.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return student, head


def _scripted(monkeypatch, student, head, scores):
    """The dev measure returns `scores` in turn and snapshots the weights it was asked to score."""
    seen = []
    scores = iter(scores)

    def agreement(embeddings, teacher):
        seen.append(
            (
                {k: v.detach().clone() for k, v in student.state_dict().items()},
                {k: p.detach().clone() for k, p in head.named_parameters() if p.requires_grad},
            )
        )
        return {"mean_cosine": 0.5, "nearest_neighbour_agreement": 0.5, "spearman_pairwise": next(scores), "texts": 5}

    monkeypatch.setattr(ose_embedding, "embedding_agreement", agreement)
    return seen


def _distil(parts, student, head, **settings):
    _, teacher, teacher_head, tokenizer = parts
    target = embedding_steps.encode(teacher, teacher_head, tokenizer, TEXTS, 16)
    dev_teacher = embedding_steps.encode(teacher, teacher_head, tokenizer, DEV, 16)
    options = dict(epochs=1.0, learning_rate=1e-3, batch_size=BATCH, max_length=16, seed=0, show_progress=False)
    options.update(settings)
    return embedding_steps.distil_embeddings(
        student, head, target, TEXTS, tokenizer, dev_texts=DEV, dev_teacher=dev_teacher, **options
    )


def _same(state, expected):
    return all(torch.equal(state[k], expected[k]) for k in expected)


def test_the_best_dev_epoch_is_restored_and_patience_stops(parts, monkeypatch):
    student, head = _student_and_head(parts)
    seen = _scripted(monkeypatch, student, head, [0.5, 0.9, 0.7, 0.6, 0.95, 0.99])
    record = _distil(parts, student, head, patience=2, max_epochs=10)
    # epoch 2 best; epochs 3 and 4 no better: 2 epochs of patience spent, stopped before the 0.95 of epoch 5
    assert [e["spearman_pairwise"] for e in record["dev_per_epoch"]] == [0.5, 0.9, 0.7, 0.6]
    assert record["best_epoch"] == 2 and record["best_step"] == 6 and record["best_dev"]["spearman_pairwise"] == 0.9
    assert record["stopped"] == "patience" and record["stopped_early"] and record["steps"] == 12
    assert record["planned_steps"] == 30  # the decay runs over max_epochs
    encoder_state = {k: v for k, v in student.state_dict().items()}
    head_state = {k: p for k, p in head.named_parameters() if p.requires_grad}
    assert head_state  # the Dense's weights are trainable here
    assert _same(encoder_state, seen[1][0]) and _same(head_state, seen[1][1])  # the weights of epoch 2
    assert not _same(encoder_state, seen[3][0]) and not _same(head_state, seen[3][1])  # not the last epoch's


def test_patience_counts_only_after_the_minimum_steps(parts, monkeypatch):
    student, head = _student_and_head(parts)
    _scripted(monkeypatch, student, head, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    # min_steps 7 → ceil(7 / 3) = 3 epochs always run; then 1 epoch without improvement stops
    record = _distil(parts, student, head, min_steps=7, patience=1, max_epochs=10)
    assert record["min_epochs"] == 3 and record["steps"] == 12 and len(record["dev_per_epoch"]) == 4
    assert record["best_epoch"] == 1 and record["stopped"] == "patience"


def test_max_epochs_caps_the_run_and_the_step_minimum(parts, monkeypatch):
    student, head = _student_and_head(parts)
    _scripted(monkeypatch, student, head, [0.1, 0.2, 0.3, 0.4])
    record = _distil(parts, student, head, patience=2, max_epochs=3)
    assert record["stopped"] == "max_epochs" and record["steps"] == 9 and record["best_epoch"] == 3
    student, head = _student_and_head(parts)
    _scripted(monkeypatch, student, head, [0.1, 0.2, 0.3, 0.4])
    record = _distil(parts, student, head, min_steps=1000, patience=0, max_epochs=3)
    assert record["stopped"] == "min_epochs" and record["steps"] == 9 and record["planned_steps"] == 9


def test_without_patience_the_minimum_epochs_run_and_the_best_is_kept(parts, monkeypatch):
    student, head = _student_and_head(parts)
    seen = _scripted(monkeypatch, student, head, [0.8, 0.3])
    record = _distil(parts, student, head, epochs=2.0, patience=0, max_epochs=10)
    assert record["steps"] == 6 and record["planned_steps"] == 6 and record["stopped"] == "min_epochs"
    assert record["best_epoch"] == 1 and _same(student.state_dict(), seen[0][0])


def _config(**overrides):
    settings = fast_settings(**overrides)
    settings.setdefault("task", "feature-extraction")
    return CompressionConfig(model="st-folder", dataset="texts/", **settings)


def test_embedding_defaults_are_resolved_and_saved():
    config = _config()
    assert (config.embedding_min_steps, config.embedding_patience, config.embedding_max_epochs) == (1000, 2, 10)
    saved = config.to_dict()
    assert saved["embedding_patience"] == 2
    assert _config(embedding_patience=3).differences(saved) == ["embedding_patience"]  # resume notices the change
    classification = CompressionConfig(model="m", dataset="d", **fast_settings())
    assert classification.embedding_min_steps is None and classification.to_dict()["embedding_max_epochs"] is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(embedding_min_steps=-1), "`embedding_min_steps` must be an integer >= 0"),
        (dict(embedding_min_steps=2.5), "`embedding_min_steps` must be an integer >= 0"),
        (dict(embedding_patience=-1), "`embedding_patience` must be an integer >= 0"),
        (dict(embedding_patience=True), "`embedding_patience` must be an integer >= 0"),
        (dict(embedding_max_epochs=0), "`embedding_max_epochs` must be an integer >= 1"),
        (dict(embedding_max_epochs=2, task_epochs=3.0), r"`embedding_max_epochs` \(2\) must be >= `task_epochs`"),
        (dict(task="text-classification", embedding_patience=2), "`embedding_patience` applies to task='feature-"),
        (dict(task="text-classification", embedding_min_steps=0), "`embedding_min_steps` applies to task='feature"),
        (dict(task="text-classification", embedding_max_epochs=5), "`embedding_max_epochs` applies to task='featu"),
    ],
)
def test_bad_embedding_settings_are_refused_when_the_config_is_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_the_cli_parses_the_embedding_settings():
    from hf_bort.compress.cli import parse

    argv = ["st", "--dataset", "t/", "--task", "feature-extraction", "--measure-onnx", "false"]
    config = parse([*argv, "--embedding-min-steps", "50", "--embedding-patience", "0", "--embedding-max-epochs", "4"])
    assert (config.embedding_min_steps, config.embedding_patience, config.embedding_max_epochs) == (50, 0, 4)
    with pytest.raises(ValueError, match="`embedding_patience` applies to task='feature-extraction'"):
        parse(["m", "--dataset", "t/", "--measure-onnx", "false", "--embedding-patience", "1"])
