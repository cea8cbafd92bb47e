"""`compress` writes the student's model card from its report and, with `push_to_hub`, pushes the student folder."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard

from hf_bort import CompressionConfig, compress
from hf_bort.compress import recipe
from hf_bort.hub import HubPushError
from hf_bort.ose import OSESearch
from tiny_tasks import fast_settings


def _config(tiny_source, data_dir, out, **overrides):
    return CompressionConfig(
        model=str(tiny_source),
        dataset=str(data_dir),
        output_dir=str(out),
        **fast_settings(candidate="D1-A2-H24-I16-d8", **overrides),
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"push_to_hub": True}, "`push_to_hub` needs `hub_model_id`"),
        ({"push_to_hub": True, "hub_model_id": "a b"}, "`hub_model_id` must be a Hub repository id"),
        ({"hub_model_id": "me/x"}, "`hub_model_id` given without `push_to_hub=True`"),
        ({"push_to_hub": True, "hub_model_id": "me/x", "hub_revision": " "}, "`hub_revision` must be a non-empty"),
    ],
)
def test_hub_settings_are_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig(model="m", dataset="d", **fast_settings(**overrides))


def test_push_offline_fails_before_any_work(tmp_path, tiny_source, data_dir, monkeypatch):
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config(tiny_source, data_dir, tmp_path / "out", push_to_hub=True, hub_model_id="me/x")
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        compress(config)
    assert not (tmp_path / "out").exists()


def test_compress_writes_the_card_and_pushes_the_student_folder(tmp_path, tiny_source, data_dir, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    commits = []
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "me"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **k: None)
    monkeypatch.setattr(HfApi, "create_branch", lambda *a, **k: pytest.fail("no revision was asked for"))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **k: commits.append(operations))
    config = _config(tiny_source, data_dir, tmp_path / "out", push_to_hub=True, hub_model_id="me/tiny-student")
    result = compress(config)
    student = tmp_path / "out" / "student"
    card = ModelCard.load(student / "README.md")
    report = result.report
    assert card.data.model_name == "tiny-student" and card.data.pipeline_tag == "text-classification"
    assert {"hf_bort", "bort", "compressed", "bert"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local source is no base_model
    examples = report["data"]["examples"]  # dev texts of the run's data: the widget (issue 22 item 2)
    assert len(examples) == 3 and card.data.widget == [{"text": text} for text in examples]
    assert "- Base model: unknown" in card.text and "### Framework versions" in card.text
    values = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert values[("test", "accuracy")] == report["student"]["test"]["accuracy"]
    assert values[("validation", "f1")] == report["student"]["dev"]["macro_f1"]
    assert f"{report['student']['parameters']:,}" in card.text
    assert f"{report['latency']['pytorch']['student']['p50_ms']:.2f} ms" in card.text
    saved = json.loads((student / "compression_report.json").read_text())
    assert saved["student"] == json.loads(json.dumps(report["student"]))
    (operations,) = commits
    pushed = sorted(op.path_in_repo for op in operations)
    assert pushed == sorted(p.relative_to(student).as_posix() for p in student.rglob("*") if p.is_file())
    assert {"README.md", "model.safetensors", "modeling_bort.py", "tokenizer.json", "compression_report.json"} <= set(
        pushed
    )
    assert report["hub"]["repo_id"] == "me/tiny-student"
    readme = next(op for op in operations if op.path_in_repo == "README.md").path_or_fileobj.decode()
    assert 'from_pretrained("me/tiny-student", trust_remote_code=True)' in readme
    assert ModelCard(readme).text.lstrip().startswith("# tiny-student\n")  # the title is the repo name


def test_cli_flags_for_the_hub():
    from hf_bort.compress.cli import parse

    config = parse(
        ["m", "--dataset", "d", "--push-to-hub", "--hub-model-id", "me/x", "--hub-private-repo", "true"]
        + ["--hub-revision", "v1", "--measure-onnx", "false"]
    )
    assert (config.push_to_hub, config.hub_model_id, config.hub_private_repo, config.hub_revision) == (
        True,
        "me/x",
        True,
        "v1",
    )
    assert "hub_model_id" not in config.differences({**config.to_dict(), "hub_model_id": "other/y"})  # resumable
