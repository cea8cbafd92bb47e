"""`hf_bort.compress`: inputs checked before any work, the whole pipeline on a tiny model, resume after a kill."""

from __future__ import annotations

import csv
import json

import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoModelForSequenceClassification

from hf_bort import CompressionConfig, compress
from hf_bort.compress import pipeline, recipe
from hf_bort.ose import OSESearch
from tiny_tasks import fast_settings, make_rows


def _config(tiny_source, dataset, out, **overrides):
    return CompressionConfig(
        model=str(tiny_source), dataset=dataset, output_dir=str(out), **fast_settings(**overrides)
    )


def _learnable(**overrides):
    """Enough fine-tuning for the tiny source to learn the cue words (so accuracies mean something)."""
    return dict(
        finetune_epochs=10.0, finetune_learning_rate=2e-3, task_epochs=6.0, task_learning_rate=3e-3, **overrides
    )


def test_compress_end_to_end(tmp_path, tiny_source, data_dir):
    result = compress(_config(tiny_source, str(data_dir), tmp_path / "out", **_learnable()))
    out = tmp_path / "out"
    report = json.loads((out / "compression_report.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    for name in (
        "student/config.json",
        "student/model.safetensors",
        "student/tokenizer_config.json",
        "search/front.md",
        "search/front.png",
        "search/choice.json",
        "search/candidates.jsonl",
        "compression_config.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "search" / "states").exists() or not any((out / "search" / "states").rglob("*.pt"))
    student = report["student"]
    assert student["multiply_adds_ratio"] <= 0.6
    assert report["search"]["searched"] and report["search"]["candidates_searched"] >= 2
    assert report["data"]["candidates_within_multiply_adds_budget"] == report["search"]["candidates_searched"]
    assert report["data"]["candidates_within_multiply_adds_budget"] < report["data"]["candidates_in_space"]
    assert report["search"]["candidate"] == json.loads((out / "search" / "choice.json").read_text())["candidate"]
    chosen_error = report["search"]["error"]
    assert chosen_error == min(point["error"] for point in report["search"]["front"])
    assert report["source"]["finetuned_here"] and report["source"]["dev"]["accuracy"] > 0.8
    assert student["test"]["rows"] == 32 and report["source"]["test"]["rows"] == 32
    assert student["dev"]["accuracy"] > 0.7
    assert report["reload"]["ok"] and not report["reload"]["hf_bort_imported_in_reload_process"]
    assert report["latency"]["pytorch"]["student"]["ratio_to_source"] > 0
    speed = report["speed"]  # measured beside analytic, the multiply-adds counted at the timed length
    assert speed["sequence_length"] == report["latency"]["sequence_length"]
    assert speed["pytorch"]["latency_ratio"] == pytest.approx(
        report["latency"]["pytorch"]["student"]["ratio_to_source"]
    )
    assert 0 < speed["analytic_multiply_adds_ratio"] < 1 and speed["pytorch"]["fraction_of_analytic"] > 0
    assert set(report["wall_s"]) >= set(pipeline.STAGES)
    loaded = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert type(loaded).__name__ == "BortForSequenceClassification" and loaded.config.num_labels == 2
    summary = result.summary()
    assert "dev accuracy" in summary and student["shape"] in summary
    assert "of the analytic speed-up" in summary


def test_resume_after_a_kill_restarts_at_the_stage_and_the_candidate(tmp_path, tiny_source, data_dir, monkeypatch):
    config = _config(tiny_source, str(data_dir), tmp_path / "out")
    real_evaluate = OSESearch.evaluate_candidate
    calls: list[tuple[str, int]] = []

    def killed_after_three(self, candidate, steps):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed in the middle of the search
        calls.append((candidate.key, steps))
        return real_evaluate(self, candidate, steps)

    monkeypatch.setattr(OSESearch, "evaluate_candidate", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        compress(config)
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert set(progress["stages"]) == {"data", "source"}
    first = list(calls)

    calls.clear()
    monkeypatch.setattr(
        OSESearch, "evaluate_candidate", lambda self, c, s: (calls.append((c.key, s)), real_evaluate(self, c, s))[1]
    )
    finetunes = []
    real_finetune = recipe.finetune

    def killed_in_task_stage(*args, **kwargs):
        finetunes.append(kwargs.get("teacher") is not None)
        if kwargs.get("teacher") is not None and finetunes.count(True) == 1:
            raise KeyboardInterrupt  # killed again, now during task distillation
        return real_finetune(*args, **kwargs)

    monkeypatch.setattr(recipe, "finetune", killed_in_task_stage)
    with pytest.raises(KeyboardInterrupt):
        compress(config)
    assert finetunes == [True]  # the source was not fine-tuned again
    assert not set(first) & set(calls)  # finished candidates were not evaluated again
    assert len(first) == 3 and calls
    records = (tmp_path / "out" / "search" / "candidates.jsonl").read_text().splitlines()
    assert len(records) == len(first) + len(calls)

    calls.clear()
    result = compress(config)
    assert calls == [] and finetunes == [True, True]
    assert result.report["student"]["test"]["rows"] == 32


def test_a_finetuned_classifier_is_the_teacher_as_it_is(tmp_path, tiny_source, data_dir):
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_source, num_labels=2)
    classifier.save_pretrained(tmp_path / "clf")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_source / name).is_file():
            (tmp_path / "clf" / name).write_bytes((tiny_source / name).read_bytes())
    config = CompressionConfig(
        model=str(tmp_path / "clf"),
        dataset=str(data_dir),
        output_dir=str(tmp_path / "out"),
        **fast_settings(candidate="D2-A4-H32-I37-d8", max_cost_ratio=1.0, distill_epochs=0.0),
    )
    result = compress(config)
    assert result.report["source"]["finetuned_here"] is False
    assert result.report["search"]["searched"] is False
    assert not (tmp_path / "out" / "source-finetuned").exists()
    # the full-size candidate extracted from the classifier starts as the classifier itself
    teacher_dev = result.report["source"]["dev"]["accuracy"]
    assert result.report["data"]["source_is_finetuned_classifier"] and 0 <= teacher_dev <= 1


def test_three_classes_a_carved_dev_split_and_string_labels(tmp_path, tiny_source):
    rows = make_rows(150, 0, num_labels=3)
    names = ["pos", "neg", "neutral"]
    train = Dataset.from_dict({"sentence": [r["text"] for r in rows], "y": [names[r["label"]] for r in rows]})
    config = _config(
        tiny_source,
        DatasetDict({"train": train}),
        tmp_path / "out",
        text_column="sentence",
        label_column="y",
        candidate="D1-A2-H24-I16-d8",
    )
    result = compress(config)
    data = result.report["data"]
    assert data["validation_carved"] and data["sizes"] == {"train": 135, "validation": 15}
    assert data["label_names"] == ["neg", "neutral", "pos"] and data["num_labels"] == 3
    assert any("carved 15 rows" in note for note in data["notes"])
    assert result.report["test_split_read"] == "no test split"
    summary = result.summary()  # no test rows: the table has dev rows only
    assert "dev accuracy" in summary and "test accuracy" not in summary
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "student").config.num_labels == 3


def _csv(path, rows, fields=("text", "label")):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_column", r"`text_column` 'text' is not a column of the 'train' split"),
        ("one_class", r"single class"),
        ("empty_split", r"The 'validation' split is empty"),
        ("empty_file", r"`dataset` split 'validation': .*validation.csv could not be read"),
        ("head_too_small", r"Labels \[2\] do not fit the source classifier's 2 outputs"),
        ("budget", r"No candidate of the search space does not fit|does not fit `max_cost_ratio` 0.001"),
        ("unsupported", r"compress extracts weights from"),
        ("not_a_dataset", r"`dataset` .* does not exist"),
    ],
)
def test_bad_input_fails_before_any_training(tmp_path, tiny_source, case, message, monkeypatch):
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(OSESearch, "run", lambda *a, **k: pytest.fail("searched"))
    rows = make_rows(40, 0)
    data = tmp_path / "data"
    model = str(tiny_source)
    overrides = {}
    if case == "missing_column":
        _csv(data / "train.csv", [{"sentence": r["text"], "label": r["label"]} for r in rows], ("sentence", "label"))
    elif case == "one_class":
        _csv(data / "train.csv", [{**r, "label": 0} for r in rows])
    elif case == "empty_split":
        data = DatasetDict(
            {"train": Dataset.from_list(rows), "validation": Dataset.from_dict({"text": [], "label": []})}
        )
    elif case == "empty_file":
        _csv(data / "train.csv", rows)
        _csv(data / "validation.csv", [])
    elif case == "head_too_small":
        _csv(data / "train.csv", [{**r, "label": i % 3} for i, r in enumerate(rows)])
        clf = AutoModelForSequenceClassification.from_pretrained(tiny_source, num_labels=2)
        clf.save_pretrained(tmp_path / "clf")
        (tmp_path / "clf" / "vocab.txt").write_bytes((tiny_source / "vocab.txt").read_bytes())
        model = str(tmp_path / "clf")
    elif case == "budget":
        _csv(data / "train.csv", rows)
        overrides["max_cost_ratio"] = 0.001
    elif case == "unsupported":
        from transformers import ConvBertConfig, ConvBertModel

        _csv(data / "train.csv", rows)
        ConvBertModel(
            ConvBertConfig(
                vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37
            )
        ).save_pretrained(tmp_path / "convbert")
        model = str(tmp_path / "convbert")
    elif case == "not_a_dataset":
        data = tmp_path / "missing.csv"
    config = CompressionConfig(
        model=model,
        dataset=data if case == "empty_split" else str(data),
        output_dir=str(tmp_path / "out"),
        **fast_settings(**overrides),
    )
    with (
        pytest.raises(ValueError, match=message)
        if case != "not_a_dataset"
        else pytest.raises(FileNotFoundError, match=message)
    ):
        compress(config)
    assert not (tmp_path / "out" / "progress.json").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_cost_ratio", -3.0, r"`max_cost_ratio` must be a number in \(0, 1\]"),
        ("max_latency_ms", float("nan"), r"`max_latency_ms` must be a finite number > 0"),
        ("epsilon", 0.0, r"`epsilon` must be a number in \(0, 1\]"),
        ("search_layers", "2,x", r"`search_layers` must be comma-separated positive integers"),
        ("candidate", "D2-A4", r"is not a candidate key"),
        ("task_epochs", 0.0, r"`task_epochs` must be > 0"),
        ("dataset", None, r"`dataset` is required"),
    ],
)
def test_config_validation_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig(model="m", **{"dataset": "d", **fast_settings(), field: value})


def test_a_run_with_other_settings_is_not_mixed_in(tmp_path, tiny_source, data_dir):
    compress(_config(tiny_source, str(data_dir), tmp_path / "out", candidate="D1-A2-H24-I16-d8"))
    with pytest.raises(ValueError, match=r"holds a run with other settings \(seed\)"):
        compress(_config(tiny_source, str(data_dir), tmp_path / "out", candidate="D1-A2-H24-I16-d8", seed=1))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="is not empty and holds no compression run"):
        compress(_config(tiny_source, str(data_dir), tmp_path / "other"))
    assert (tmp_path / "other" / "keep.txt").read_text() == "user data"


def test_cli_compress(tmp_path, tiny_source, data_dir, capsys):
    from hf_bort.cli import main

    settings = fast_settings(candidate="D1-A2-H24-I16-d8")
    argv = ["compress", str(tiny_source), "--dataset", str(data_dir), "--output-dir", str(tmp_path / "out")]
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag, str(value)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "D1-A2-H24-I16-d8" in printed and "compression_report.json" in printed
    saved = json.loads((tmp_path / "out" / "compression_config.json").read_text())
    assert saved["max_cost_ratio"] == 0.6 and saved["candidate"] == "D1-A2-H24-I16-d8"


def test_cli_dashed_flags_and_field_name_aliases_parse_alike():
    from hf_bort.compress.cli import parse

    dashed = parse(["m", "--dataset", "d", "--output-dir", "out", "--max-cost-ratio", "0.5", "--no-measure-onnx"])
    underscored = parse(["m", "--dataset", "d", "--output_dir", "out", "--max_cost_ratio", "0.5", "--no_measure_onnx"])
    assert dashed == underscored
    assert dashed.output_dir == "out" and dashed.max_cost_ratio == 0.5 and dashed.measure_onnx is False


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_cli_config_file_with_command_line_overrides(tmp_path, suffix):
    from hf_bort.compress.cli import parse

    settings = {"model": "m", "dataset": "d", "output_dir": "from-file", "epsilon": 0.5, "measure_onnx": False}
    settings["search_layers"] = "1,2"
    path = tmp_path / f"compress{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(settings))
    else:
        path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()))
    config = parse(["--config", str(path), "--output-dir", "from-cli"])
    assert config.model == "m" and config.epsilon == 0.5 and config.measure_onnx is False
    assert config.search_layers == "1,2" and config.output_dir == "from-cli"  # the command line wins
    assert parse(["other", "--config", str(path)]).model == "other"  # so does the positional MODEL


def test_cli_config_file_errors_name_the_problem(tmp_path, capsys):
    from hf_bort.cli import main

    (tmp_path / "bad.yaml").write_text("model: m\ndataset: d\nmax_cost_ratoi: 0.3\n")
    assert main(["compress", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown key(s) max_cost_ratoi" in capsys.readouterr().err
    (tmp_path / "list.yaml").write_text("- model\n")
    assert main(["compress", "--config", str(tmp_path / "list.yaml")]) == 2
    assert "expected a mapping" in capsys.readouterr().err
    (tmp_path / "c.toml").write_text("model = 'm'\n")
    assert main(["compress", "--config", str(tmp_path / "c.toml")]) == 2
    assert ".yaml, .yml or .json" in capsys.readouterr().err
    assert main(["compress", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "is not a file" in capsys.readouterr().err
