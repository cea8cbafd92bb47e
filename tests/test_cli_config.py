"""One CLI style: each `hf-bort` command parses its dataclass with HfArgumentParser (`--config`, positionals)."""

from __future__ import annotations

import json
import re

import pytest

from hf_bort.cli import main, parse_demo
from hf_bort.exporters.cli import parse_bench, parse_export
from hf_bort.hub import parse_push
from hf_bort.models.cli import parse_convert, parse_count
from hf_bort.ose.cli import parse_distill, parse_extract

# command: (parse, positional arguments, settings in the --config file, a flag overriding one, expected values)
CASES = {
    "convert": (parse_convert, ["src", "out"], {"tolerance": 0.001}, ["--tolerance", "0.01"], {"tolerance": 0.01}),
    "count": (
        parse_count,
        ["bort"],
        {"task": "fill-mask"},
        ["--task", "text-classification"],
        {"task": "text-classification"},
    ),
    "demo": (parse_demo, [], {"threads": 2, "json": True}, ["--threads", "3"], {"threads": 3, "json": True}),
    "extract": (
        parse_extract,
        ["src", "out"],
        {"epsilon": 0.5, "candidate": "D1-A2-H32-I8-d8", "layers": "1,2"},
        ["--epsilon", "0.7"],
        {"epsilon": 0.7, "candidate": "D1-A2-H32-I8-d8", "layers": "1,2"},
    ),
    "distill": (
        parse_distill,
        ["student", "teacher", "out"],
        {"max_steps": 2, "batch_size": 4},
        ["--batch-size", "8"],
        {"max_steps": 2, "batch_size": 8},
    ),
    "export": (
        parse_export,
        ["model", "out"],
        {"quantize": "dynamic-int8", "opset": 13, "optimize": False},
        ["--opset", "17"],
        {"quantize": "dynamic-int8", "opset": 17, "optimize": False},
    ),
    "bench": (
        parse_bench,
        ["bort"],
        {"engines": ["pytorch"], "warmup": 1, "batch_sizes": [1, 4]},
        ["--warmup", "2"],
        {"engines": ["pytorch"], "warmup": 2, "batch_sizes": [1, 4]},
    ),
    "push": (
        parse_push,
        ["folder", "me/model"],
        {"revision": "v1", "private": True},
        ["--revision", "v2"],
        {"revision": "v2", "private": True},
    ),
}


def _value(parsed, name):
    for item in parsed if isinstance(parsed, tuple) else (parsed,):
        if hasattr(item, name):
            return getattr(item, name)
    raise AssertionError(f"no {name}")


def _write_yaml(path, values: dict):
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items()))
    return path


@pytest.mark.parametrize("command", sorted(CASES))
def test_config_file_sets_values_and_the_command_line_overrides_them(command, tmp_path):
    parse, positional, settings, override, expected = CASES[command]
    path = _write_yaml(tmp_path / "settings.yaml", settings)
    from_file = parse([*positional, "--config", str(path)])
    for name, value in settings.items():
        assert _value(from_file, name) == value, name
    overridden = parse([*positional, "--config", str(path), *override])
    for name, value in {**settings, **expected}.items():
        assert _value(overridden, name) == value, name
    flag_first = parse([*override, "--config", str(path), *positional])  # order does not matter: the flag wins
    assert all(_value(flag_first, name) == value for name, value in {**settings, **expected}.items())


@pytest.mark.parametrize("command", sorted(CASES))
def test_unknown_config_key_is_an_error_naming_it(command, tmp_path, capsys):
    _, positional, settings, _, _ = CASES[command]
    path = _write_yaml(tmp_path / "bad.yaml", {**settings, "bogus_setting": 1})
    assert main([command, *positional, "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "unknown key(s) bogus_setting" in error and str(path) in error


HELP = {
    "convert": ("--tolerance", "(default: 1e-05)"),
    "count": ("--task", "(default: feature-extraction)"),
    "demo": ("--output-dir", "(default: runs/demo)"),
    "extract": ("--epsilon", "(default: 0.1)"),
    "distill": ("--max-length", "(default: 64)"),
    "export": ("--atol", "(default: 0.0001)"),
    "bench": ("--warmup", "(default: 3)"),
    "push": ("--commit-message", "(default: 'Upload FOLDER with hf_bort')"),
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_shows_dashed_flags_with_defaults(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    flag, default = HELP[command]
    assert "--config" in text and flag in text
    assert default in " ".join(text.split())
    options = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    assert options and not [option for option in options if "_" in option]  # the dashed spelling comes first


def test_positional_fields_can_come_from_the_config_file_or_flags(tmp_path):
    path = _write_yaml(tmp_path / "c.yaml", {"source": "from-file", "output_dir": "out"})
    assert parse_convert(["--config", str(path)]).source == "from-file"
    assert parse_convert(["positional", "--config", str(path)]).source == "positional"
    assert parse_convert(["--source", "s", "--output-dir", "o"]).output_dir == "o"


def test_positionals_stand_anywhere_and_switches_do_not_take_them():
    extract, search = parse_extract(
        ["src", "--texts", "t.txt", "--heterogeneous", "--candidate", "D1-A2-H32-I8-d8", "out"]
    )
    assert (search.source, extract.save_directory, search.heterogeneous) == ("src", "out", True)
    extract, search = parse_extract(["src", "--heterogeneous", "false", "out"])
    assert (extract.save_directory, search.heterogeneous) == ("out", False)
    bench = parse_bench(["bort", "bert-base", "--batch-sizes", "1", "8", "--compare", "bort:bert-base"])
    assert bench.models == ["bort", "bert-base"] and bench.batch_sizes == [1, 8]
    assert parse_bench(["bort", "--compare", "a:b", "--compare", "c:d"]).comparisons() == [("a", "b"), ("c", "d")]
    assert parse_bench(["--student", "dir"]).models == []


def test_missing_or_extra_positionals_name_the_field(capsys):
    assert main(["distill", "student", "teacher"]) == 2
    assert "missing SAVE_DIRECTORY (`save_directory`)" in capsys.readouterr().err
    assert main(["push", "folder"]) == 2
    assert "missing REPO_ID (`repo_id`)" in capsys.readouterr().err
    assert main(["convert", "a", "b", "c"]) == 2
    assert "unexpected argument(s) c" in capsys.readouterr().err
    assert main(["count", "bort", "--tsak", "fill-mask"]) == 2  # not "unexpected argument fill-mask"
    assert "unknown option --tsak" in capsys.readouterr().err
    assert parse_count(["bort", "--ta", "fill-mask"]).task == "fill-mask"  # argparse's unique abbreviations


@pytest.mark.parametrize(
    ("parse", "argv", "field"),
    [
        (parse_convert, ["s", "o", "--tolerance", "nan"], "tolerance"),
        (parse_convert, ["", "o"], "`source` must be a path or Hub id"),
        (parse_distill, ["s", "t", " "], "`save_directory` must be"),
        (parse_push, ["", "me/model"], "`folder` must be a model folder"),
        (parse_demo, ["--threads", "0"], "threads"),
        (parse_extract, ["s", "o", "--candidate", "bogus"], "candidate"),
        (parse_extract, ["s", "o", "--max-cost-ratio", "0.3"], "max_cost_ratio"),
        (parse_distill, ["s", "t", "o", "--batch-size", "0"], "batch_size"),
        (parse_export, ["m", "o", "--validation-texts", "no-such-file.txt"], "validation_texts"),
        (parse_export, ["m", "o", "--min-cosine", "2"], "min_cosine"),
        (parse_bench, ["bort", "--compare", "nocolon"], "compare"),
        (parse_bench, ["bort", "--student", "dir"], "either model names or --student"),
        (parse_bench, ["bort", "--warmup", "-1"], "warmup"),
        (parse_push, ["folder", "not a repo"], "repo_id"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(parse, argv, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        parse(argv)
