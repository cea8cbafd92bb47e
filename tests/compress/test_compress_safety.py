"""`compress` and the user's files (issue 19): no overlap with the inputs, deleting only what it wrote, one run per
folder, resuming under another spelling of the folder, and early, named errors for bad settings and run files."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from hf_bort import CompressionConfig, InUseError, compress
from hf_bort._outputs import WRITTEN_NAME
from hf_bort.compress import pipeline, recipe, run
from hf_bort.ose import OSESearch
from tiny_tasks import fast_settings

# The smallest full run the compress tests use: a given candidate (no search), no hidden distillation.
QUICK = dict(candidate="D1-A2-H24-I16-d8", distill_epochs=0.0, reload_check=False, evaluate_test=False)


class Finetuning(Exception):
    """Raised instead of fine-tuning the source: the run got past every check."""


def _config(model, dataset, out, **overrides):
    return CompressionConfig(model=str(model), dataset=str(dataset), output_dir=str(out), **fast_settings(**overrides))


@pytest.fixture
def no_training(monkeypatch):
    """Fine-tuning or searching fails the test; `stop_at_finetune()` makes fine-tuning raise `Finetuning` instead."""
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: pytest.fail("fine-tuned"))
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched"))

    def stop_at_finetune():
        def stop(*args, **kwargs):
            raise Finetuning

        monkeypatch.setattr(recipe, "finetune", stop)

    return stop_at_finetune


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------------------------- 1. the inputs are never the output
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("model", r"output_dir .* is the source folder model="),
        ("model/inside", r"lies inside the source folder model="),
        ("parent", r"contains the source folder model="),
        ("data", r"is the source folder dataset="),
        ("data/inside", r"lies inside the source folder dataset="),
        ("link-to-model", r"is the source folder model="),
        ("data-file-parent", r"contains the source file dataset="),
    ],
)
def test_an_output_overlapping_the_model_or_the_data_is_refused(
    tmp_path, tiny_source, data_dir, no_training, where, message
):
    before = {folder: _files(folder) for folder in (tiny_source, data_dir)}
    dataset = data_dir
    if where == "parent":
        out = tmp_path
    elif where == "link-to-model":
        out = tmp_path / "link"
        out.symlink_to(tiny_source, target_is_directory=True)
    elif where == "data-file-parent":
        dataset, out = data_dir / "train.csv", data_dir
    else:
        out = tmp_path / where.replace("model", tiny_source.name)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=message):
            compress(_config(tiny_source, dataset, out, overwrite_output_dir=overwrite))
    assert {folder: _files(folder) for folder in before} == before  # nothing written, nothing deleted


def test_overwrite_deletes_only_what_compress_wrote(tmp_path, tiny_source, data_dir):
    project = tmp_path / "project"  # `--output-dir .` in a project folder
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "notes.txt").write_text("keep me")
    compress(_config(tiny_source, data_dir, project, overwrite_output_dir=True, **QUICK))
    written = json.loads((project / WRITTEN_NAME).read_text())["written"]
    assert "student" in written and "src" not in written and "notes.txt" not in written
    result = compress(_config(tiny_source, data_dir, project, overwrite_output_dir=True, seed=1, **QUICK))
    assert result.report["settings"]["seed"] == 1
    assert (project / "notes.txt").read_text() == "keep me"
    assert (project / "src" / "main.py").read_text() == "print('mine')\n"
    assert json.loads((project / "compression_config.json").read_text())["seed"] == 1


def test_overwrite_never_writes_over_an_entry_it_did_not_write(tmp_path, tiny_source, data_dir, no_training):
    out = tmp_path / "out"
    (out / "student").mkdir(parents=True)
    (out / "student" / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match=r"holds 'student', which no hf_bort run recorded writing"):
        compress(_config(tiny_source, data_dir, out, overwrite_output_dir=True))
    assert (out / "student" / "thesis.tex").read_text() == "years of work"


def test_a_run_folder_without_a_record_of_its_files_is_not_deleted(tmp_path, tiny_source, data_dir, no_training):
    out = tmp_path / "out"  # as an hf_bort version before the record left it (or as a user may have copied it)
    out.mkdir()
    (out / "compression_config.json").write_text(json.dumps({"seed": 5}))
    (out / "progress.json").write_text(json.dumps({"stages": {}}))
    (out / "weights-i-need").write_text("x")
    with pytest.raises(ValueError, match="did not record the files it wrote"):
        compress(_config(tiny_source, data_dir, out, overwrite_output_dir=True))
    assert _files(out) == [".hf_bort.lock", "compression_config.json", "progress.json", "weights-i-need"]


# ------------------------------------------------------------------------------------ 2 + 14. one run per folder
@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_a_second_run_into_a_busy_folder_fails_at_once(tmp_path, tiny_source, data_dir, no_training, held_lock, task):
    out = tmp_path / "out"
    out.mkdir()
    holder = held_lock(out / ".hf_bort.lock")  # another compress run in this folder
    config = _config(tiny_source, data_dir, out, task=task, overwrite_output_dir=True)
    with pytest.raises(InUseError, match=rf"output folder .* in use by another process \(pid {holder.pid}"):
        compress(config)  # before any data, model or training (no_training)
    assert _files(out) == [".hf_bort.lock"]


def test_the_lock_is_held_for_the_whole_run(tmp_path, tiny_source, data_dir, monkeypatch):
    out = tmp_path / "out"
    held = []
    real = recipe.finetune

    def finetune(*args, **kwargs):
        held.append(pipeline.is_held(out / pipeline.LOCK_NAME))
        return real(*args, **kwargs)

    monkeypatch.setattr(recipe, "finetune", finetune)
    compress(_config(tiny_source, data_dir, out, **QUICK))
    assert held and all(held)  # fine-tuning the source and the task distillation
    assert not pipeline.is_held(out / pipeline.LOCK_NAME)
    with pytest.raises(RuntimeError, match="is not locked"):
        run.Run(_config(tiny_source, data_dir, out, **QUICK))


def test_a_lock_file_replaced_while_locking_is_locked_again(tmp_path, monkeypatch):
    """A holder that deletes its lock file (a compress run leaving no folder behind) cannot hand out a stale lock."""
    import fcntl

    from hf_bort import _lock

    path = tmp_path / ".hf_bort.lock"
    real_flock, calls = fcntl.flock, []

    def flock(fd, operation):
        if operation & fcntl.LOCK_EX and not calls:  # the holder removes the file between our open and our flock
            path.unlink()
            path.write_text("")
        calls.append(os.fstat(fd).st_ino)
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with _lock.exclusive_lock(path, "the folder"):
        assert os.stat(path).st_ino == calls[-1]  # the lock is on the file now at `path`
        assert "pid" in path.read_text()


def test_a_refused_run_leaves_no_folder_behind(tmp_path, tiny_source, no_training):
    with pytest.raises(FileNotFoundError):
        compress(_config(tiny_source, tmp_path / "missing.csv", tmp_path / "new" / "out"))
    assert not (tmp_path / "new" / "out").exists()


# ------------------------------------------------------------------------------ 8. max_length within the positions
@pytest.mark.parametrize(("family", "max_length", "limit"), [("bert", 65, 64), ("bert", 128, 64), ("roberta", 65, 64)])
def test_max_length_beyond_the_source_positions_fails_in_the_data_stage(
    tmp_path, data_dir, no_training, family, max_length, limit
):
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    from tiny_shapes import TINY_SHAPE
    from tiny_tokenizers import bert_tokenizer, roberta_tokenizer

    source = tmp_path / family
    if family == "bert":
        BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
        bert_tokenizer(source).save_pretrained(source)
    else:  # 66 rows, positions counted from pad_token_id + 1 = 2
        RobertaModel(RobertaConfig(**{**TINY_SHAPE, "max_position_embeddings": 66})).save_pretrained(source)
        roberta_tokenizer(source).save_pretrained(source)
    offset = " minus the RoBERTa offset" if family == "roberta" else ""
    with pytest.raises(ValueError, match=rf"`max_length` {max_length} exceeds the {limit} positions .*{offset}"):
        compress(_config(source, data_dir, tmp_path / "out", max_length=max_length))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- 9. a latency budget too small
def test_an_impossible_latency_budget_fails_before_finetuning(tmp_path, tiny_source, data_dir, no_training):
    config = _config(
        tiny_source, data_dir, tmp_path / "out", max_latency_ms=1e-9, latency_engine="pytorch", cost_sequence_length=16
    )
    with pytest.raises(ValueError, match=r"`max_latency_ms` 1e-09 is below .* the cheapest candidate, D1-A2-H24-I16"):
        compress(config)


def test_the_search_names_the_cheapest_candidate_of_an_impossible_budget(tmp_path, tiny_source):
    from hf_bort.ose import SearchSpace

    space = SearchSpace.from_source(
        tiny_source, num_layers=(1, 2), num_heads=(4,), hidden_sizes=(32,), intermediate_sizes=(37,)
    )
    search = OSESearch(
        tiny_source,
        space,
        text_dataset=["the movie was good", "a dull plot"] * 24,
        output_dir=tmp_path / "run",
        cost="latency_ms",
        latency_engine="pytorch",
        sequence_length=16,
        max_latency_ms=1e-9,
        show_progress=False,
    )
    with pytest.raises(ValueError, match=r"the cheapest, D1-A4-H32-I37-d8, costs") as error:
        search.candidates_within_budget()
    assert "{" not in str(error.value)


# --------------------------------------------------------------------------------- 10. a corrupted progress.json
def _killed_after_the_data_stage(tiny_source, data_dir, out, stop_at_finetune, **overrides):
    stop_at_finetune()
    with pytest.raises(Finetuning):
        compress(_config(tiny_source, data_dir, out, **overrides))
    assert set(json.loads((out / "progress.json").read_text())["stages"]) == {"data"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"stages": {"data": {"fingerpr', "is not valid JSON"),
        (b"", "is empty"),
        (b"[1, 2]", "holds a JSON list"),
        (b'{"stages": "\xff\xfe"}', "is not UTF-8 text"),
        (b'{"stages": {"data": 3}}', "has stage records that are not objects"),
    ],
)
def test_a_corrupted_progress_file_is_named_and_overwrite_recovers(
    tmp_path, tiny_source, data_dir, no_training, content, problem
):
    out = tmp_path / "out"
    _killed_after_the_data_stage(tiny_source, data_dir, out, no_training)
    (out / "mine.txt").write_text("not compress's")
    (out / "progress.json").write_bytes(content)
    with pytest.raises(ValueError, match=rf"progress.json {problem}.*--overwrite-output-dir"):
        compress(_config(tiny_source, data_dir, out))
    with pytest.raises(Finetuning):  # starts again: past every check, at the fine-tuning
        compress(_config(tiny_source, data_dir, out, overwrite_output_dir=True))
    assert (out / "mine.txt").read_text() == "not compress's"
    assert set(json.loads((out / "progress.json").read_text())["stages"]) == {"data"}


def test_an_unreadable_record_of_written_files_deletes_nothing(tmp_path, tiny_source, data_dir, no_training):
    out = tmp_path / "out"
    _killed_after_the_data_stage(tiny_source, data_dir, out, no_training)
    (out / WRITTEN_NAME).write_text("[")
    before = _files(out)
    with pytest.raises(ValueError, match=rf"{WRITTEN_NAME} .* cannot be read.*nothing is deleted"):
        compress(_config(tiny_source, data_dir, out, overwrite_output_dir=True, seed=3))
    assert _files(out) == before


def test_other_data_with_overwrite_starts_again(tmp_path, tiny_source, data_dir, monkeypatch):
    class Searching(Exception):
        pass

    def searching(*args, **kwargs):
        raise Searching

    out = tmp_path / "out"
    monkeypatch.setattr(OSESearch, "run", searching)
    with pytest.raises(Searching):  # killed in the search: the source is fine-tuned and recorded
        compress(_config(tiny_source, data_dir, out))
    other = tmp_path / "other-data"
    shutil.copytree(data_dir, other)
    (other / "train.csv").write_text((other / "train.csv").read_text() + "a good extra row,0\n")
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: pytest.fail("fine-tuned"))
    with pytest.raises(ValueError, match="holds a run on other data"):
        compress(_config(tiny_source, other, out))
    first = json.loads((out / "progress.json").read_text())["stages"]["data"]["fingerprint"]

    def finetuning(*args, **kwargs):
        raise Finetuning

    monkeypatch.setattr(recipe, "finetune", finetuning)
    with pytest.raises(Finetuning):  # the other data's teacher: fine-tuned again, not the recorded one
        compress(_config(tiny_source, other, out, overwrite_output_dir=True))
    progress = json.loads((out / "progress.json").read_text())["stages"]
    assert set(progress) == {"data"} and progress["data"]["fingerprint"] != first


# ----------------------------------------------------------------------------- 12. the same folder, spelt otherwise
def test_a_run_resumes_under_another_spelling_of_its_folder(tmp_path, tiny_source, data_dir, no_training, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _killed_after_the_data_stage(tiny_source, data_dir, tmp_path / "kb", no_training)
    for spelling in ("kb", "./kb", "kb/", str(tmp_path / "kb"), "other/../kb"):
        os.makedirs("other", exist_ok=True)
        with pytest.raises(Finetuning):  # resumed, not refused as "other settings (output_dir)"
            compress(_config(tiny_source, data_dir, spelling))


# -------------------------------------------------------------------------------- 13. broken model and run files
def _broken_source(tmp_path, tiny_source, how):
    source = tmp_path / f"source-{how}"
    shutil.copytree(tiny_source, source)
    if how == "config-list":
        (source / "config.json").write_text("[1, 2]")
    elif how == "no-tokenizer":
        for entry in source.iterdir():
            if entry.name not in ("config.json", "model.safetensors"):
                entry.unlink()
    elif how == "corrupt-weights":
        (source / "model.safetensors").write_bytes(b"garbage" * 10)
    elif how == "mismatched-weights":
        config = json.loads((source / "config.json").read_text())
        (source / "config.json").write_text(json.dumps({**config, "hidden_size": 64, "intermediate_size": 64}))
    return source


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("config-list", r"config.json holds a JSON list, not the object"),
        ("no-tokenizer", r"has no usable tokenizer .*tokenizer.json, or vocab.txt"),
        ("corrupt-weights", r"model.safetensors cannot be read as weights"),
        ("mismatched-weights", r"the weights in .*model.safetensors do not fit .*config.json .*embeddings"),
    ],
)
@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_a_broken_source_is_named_before_any_work(tmp_path, tiny_source, data_dir, no_training, how, message, task):
    source = _broken_source(tmp_path, tiny_source, how)
    with pytest.raises(ValueError, match=message):
        compress(_config(source, data_dir, tmp_path / "out", task=task))
    assert not (tmp_path / "out").exists()


def test_a_dangling_link_as_output_is_named(tmp_path, tiny_source, data_dir, no_training):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(ValueError, match=r"output_dir .* is a symbolic link to .*gone', which does not exist"):
        compress(_config(tiny_source, data_dir, link))
    assert link.is_symlink() and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_a_garbage_search_state_is_named(tmp_path, content):
    from hf_bort.ose.surrogate import CandidateTrainer

    path = tmp_path / "states" / "run" / "D1-A2-H24-I16-d8.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{path} \(a saved search state\) cannot be read .* delete it"):
        CandidateTrainer.load_state(path, torch.nn.Linear(2, 2), None, None)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=rf"{path} is not a search state"):
        CandidateTrainer.load_state(path, torch.nn.Linear(2, 2), None, None)
