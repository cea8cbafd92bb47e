"""`hf-bort push` / `hf_bort.hub.push_to_hub`: one commit with the exact files and card, checks before any upload."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from hf_bort.cards import BortCardData, save_card
from hf_bort.hub import HubPushError, check_push_ready, push_to_hub
from tiny_shapes import TINY_SHAPE


@pytest.fixture
def online(monkeypatch):
    """The Hub 'on', a token in HF_TOKEN, and every HfApi call that would reach the network recorded instead."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    calls = {"create_repo": [], "create_branch": [], "create_commit": []}

    def record(name, result=None):
        def method(self, *args, **kwargs):
            calls[name].append({"args": args, "kwargs": kwargs, "token": self.token})
            return result

        return method

    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "me"})
    monkeypatch.setattr(HfApi, "create_repo", record("create_repo"))
    monkeypatch.setattr(HfApi, "create_branch", record("create_branch"))
    monkeypatch.setattr(HfApi, "create_commit", record("create_commit"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda *a, **k: pytest.fail("push must be one create_commit"))
    return calls


@pytest.fixture
def model_dir(tmp_path):
    from hf_bort import BortConfig, BortForSequenceClassification

    torch.manual_seed(0)
    folder = tmp_path / "student"
    BortForSequenceClassification(BortConfig(**TINY_SHAPE, type_vocab_size=0)).save_pretrained(folder)
    from tiny_tokenizers import bert_tokenizer

    bert_tokenizer(tmp_path / "tok").save_pretrained(folder)
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx bytes")
    (folder / "front.png").write_bytes(b"png")
    (folder / "compression_report.json").write_text("{}")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"")
    card = BortCardData(kind="compressed", model_name="student", architecture="BortForSequenceClassification")
    save_card(card, folder)
    return folder


def test_push_uploads_every_file_and_the_card_in_one_commit(online, model_dir):
    result = push_to_hub(
        model_dir, "me/bort-tiny", private=True, revision="v1", token="hf_given", commit_message="first"
    )
    expected = sorted(
        p.relative_to(model_dir).as_posix()
        for p in model_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert {"model.safetensors", "modeling_bort.py", "configuration_bort.py", "tokenizer_config.json"} <= set(expected)
    assert {"README.md", "onnx/model.onnx", "front.png", "compression_report.json", "config.json"} <= set(expected)
    assert result["files"] == expected and result["repo_id"] == "me/bort-tiny" and result["revision"] == "v1"
    (repo,) = online["create_repo"]
    assert repo["args"] == ("me/bort-tiny",) and repo["kwargs"]["private"] is True and repo["kwargs"]["exist_ok"]
    assert repo["token"] == "hf_given"
    (branch,) = online["create_branch"]
    assert branch["kwargs"]["branch"] == "v1"
    (commit,) = online["create_commit"]
    assert commit["kwargs"]["revision"] == "v1" and commit["kwargs"]["commit_message"] == "first"
    operations = commit["args"][1]
    assert sorted(op.path_in_repo for op in operations) == expected
    by_path = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert by_path["onnx/model.onnx"] == str(model_dir / "onnx" / "model.onnx")
    uploaded = ModelCard(by_path["README.md"].decode())  # the card, pointed at the repo
    assert 'from_pretrained("me/bort-tiny", trust_remote_code=True)' in uploaded.text
    assert 'from_pretrained("student"' not in uploaded.text and "hf_bort" in uploaded.data.tags
    assert uploaded.text.lstrip().startswith("# bort-tiny\n") and "# student\n" not in uploaded.text  # title
    assert 'from_pretrained("student"' in (model_dir / "README.md").read_text()  # local card unchanged


def test_push_without_options_uses_main_and_the_saved_token(online, model_dir):
    push_to_hub(model_dir, "me/bort-tiny")
    assert online["create_branch"] == [] and online["create_commit"][0]["kwargs"]["revision"] is None
    assert (
        online["create_repo"][0]["kwargs"]["private"] is None and online["create_repo"][0]["token"] == "hf_test_token"
    )


def test_cli_push(online, model_dir, capsys):
    from hf_bort.cli import main

    assert main(["push", str(model_dir), "me/bort-tiny", "--private", "--commit-message", "hello"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["repo_id"] == "me/bort-tiny" and "README.md" in printed["files"]
    assert online["create_commit"][0]["kwargs"]["commit_message"] == "hello"
    assert online["create_repo"][0]["kwargs"]["private"] is True


def test_push_refuses_before_uploading(online, model_dir, monkeypatch, capsys):
    (model_dir / "README.md").unlink()
    with pytest.raises(HubPushError, match="no README.md model card"):
        push_to_hub(model_dir, "me/bort-tiny")
    save_card(BortCardData(kind="converted"), model_dir)
    (model_dir / "modeling_bort_layers.py").unlink()  # imported by modeling_bort.py: transformers needs it too
    with pytest.raises(HubPushError, match=r"auto_map needs \['modeling_bort_layers.py'\]"):
        push_to_hub(model_dir, "me/bort-tiny")
    (model_dir / "modeling_bort.py").unlink()
    with pytest.raises(HubPushError, match=r"auto_map needs \['modeling_bort.py'\]"):
        push_to_hub(model_dir, "me/bort-tiny")
    with pytest.raises(HubPushError, match="must be a Hub repository id"):
        check_push_ready("not a repo id")
    from hf_bort.cli import main

    assert main(["push", str(model_dir / "missing"), "me/x"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert online["create_repo"] == [] and online["create_commit"] == []


def test_offline_no_token_or_unreachable_are_clear_errors(monkeypatch, online):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        check_push_ready("me/x")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(HubPushError, match="no token"):
        check_push_ready("me/x")

    def unreachable(self, *args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(HfApi, "whoami", unreachable)
    with pytest.raises(HubPushError, match="unreachable or refused the token.*connection refused"):
        check_push_ready("me/x", token="hf_x")


def test_push_uploads_only_model_files_never_dotfiles_or_links_out(online, model_dir, tmp_path, caplog):
    """`.env`, a `.git/` folder, notes, and a link to a file outside the folder used to be uploaded."""
    (model_dir / ".env").write_text("HF_TOKEN=hf_secret\n")
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "config").write_text("[remote]")
    (model_dir / "notes.txt").write_text("private")
    outside = tmp_path / "secrets"
    outside.mkdir()
    (outside / "id_rsa").write_text("key")
    (model_dir / "merges.txt").symlink_to(outside / "id_rsa")  # an allowed name, but a link out of the folder
    (model_dir / "linked").symlink_to(outside, target_is_directory=True)
    (model_dir / "onnx" / "tokenizer.json").symlink_to(model_dir / "tokenizer.json")  # a link inside: uploaded
    with caplog.at_level("WARNING", logger="hf_bort.hub"):
        result = push_to_hub(model_dir, "me/bort-tiny")
    (commit,) = online["create_commit"]
    uploaded = sorted(op.path_in_repo for op in commit["args"][1])
    assert uploaded == result["files"]
    assert "onnx/tokenizer.json" in uploaded and "model.safetensors" in uploaded and "README.md" in uploaded
    for name in (".env", ".git/config", "notes.txt", "merges.txt", "linked/id_rsa", "__pycache__/x.pyc"):
        assert name not in uploaded
    assert result["left_out"] == [
        ".env (a dotfile)",
        ".git/ (a dot-folder)",
        "__pycache__/ (a cache, checkpoint or log folder)",
        "linked/ (a link to a folder)",
        "merges.txt (a link to outside the folder)",
        "notes.txt (not a file hf_bort or transformers writes)",
    ]
    assert "Not pushed from" in caplog.text and ".env (a dotfile)" in caplog.text
