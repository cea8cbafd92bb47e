from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, ConvBertConfig, ConvBertModel

from hf_bort.cli import main
from tiny_tokenizers import bert_tokenizer


def test_convert_command(tmp_path, capsys):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    BertForMaskedLM(config).save_pretrained(tmp_path / "src")
    bert_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "src")
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class"] == "BortForMaskedLM" and report["max_abs_difference"] < 1e-5
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "dst")).__name__ == "BortForMaskedLM"
    assert (tmp_path / "dst" / "vocab.txt").is_file() or (tmp_path / "dst" / "tokenizer.json").is_file()


def test_convert_command_rejects_unsupported_type(tmp_path, capsys):
    ConvBertModel(
        ConvBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    ).save_pretrained(tmp_path / "convbert")
    assert main(["convert", str(tmp_path / "convbert"), str(tmp_path / "dst")]) == 2
    assert "Supported model types" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()


def test_count_command(capsys):
    assert main(["count", "bort-paper"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 55_350_016


def _bert_source(folder: Path) -> Path:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    BertForMaskedLM(config).save_pretrained(folder)
    bert_tokenizer(folder).save_pretrained(folder)
    return folder


def test_convert_to_a_file_fails_before_work(tmp_path, capsys):
    source = _bert_source(tmp_path / "src")
    target = tmp_path / "out.bin"
    target.write_text("not a folder")
    assert main(["convert", str(source), str(target)]) == 2
    assert "output_dir" in capsys.readouterr().err and target.read_text() == "not a folder"


def test_convert_into_its_own_source_is_refused(tmp_path, capsys):
    source = _bert_source(tmp_path / "src")
    before = (source / "config.json").read_text()
    assert main(["convert", str(source), str(source)]) == 2
    assert "the source folder" in capsys.readouterr().err
    assert (source / "config.json").read_text() == before


def test_convert_out_of_tolerance_says_so_and_saves_nothing(tmp_path, capsys, monkeypatch):
    import hf_bort.models.bort

    source = _bert_source(tmp_path / "src")
    monkeypatch.setattr(hf_bort.models.bort, "max_output_difference", lambda *args: 0.5)
    assert main(["convert", str(source), str(tmp_path / "dst"), "--tolerance", "1e-3"]) == 1
    captured = capsys.readouterr()
    assert "0.5" in captured.err and "--tolerance" in captured.err and "nothing was saved" in captured.err
    assert json.loads(captured.out)["saved"] is False
    assert not (tmp_path / "dst").exists()
    assert main(["convert", str(source), str(tmp_path / "dst"), "--tolerance", "nan"]) == 2
    assert "--tolerance" in capsys.readouterr().err


def test_extract_to_a_file_fails_before_work(tmp_path, capsys):
    from transformers import BertModel

    from tiny_shapes import TINY_SHAPE

    source = tmp_path / "src"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tokenizer(source).save_pretrained(source)
    (tmp_path / "texts.txt").write_text("\n".join(["the movie was good", "a bad plot and dull acting"] * 30))
    target = tmp_path / "student.bin"
    target.write_text("not a folder")
    argv = ["extract", str(source), "--texts", str(tmp_path / "texts.txt"), "--output-dir", str(tmp_path / "run")]
    argv += ["--layers", "1", "--heads", "2", "--hidden", "32", "--intermediate", "8"]
    argv += ["--candidate", "D1-A2-H32-I8-d8"]
    assert main([*argv, str(target)]) == 2
    assert "save_directory" in capsys.readouterr().err and target.read_text() == "not a folder"
    assert main([*argv, str(source)]) == 2  # nor into the source folder it reads
    assert "the source folder" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    assert main([*argv, str(tmp_path / "mine")]) == 2  # a non-empty folder: only with --overwrite (issue 22)
    assert "is not empty; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert (tmp_path / "mine" / "keep.txt").read_text() == "mine"


def test_version(capsys):
    import hf_bort

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hf-bort {hf_bort.__version__}"


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser; for those that hand their flags to HfArgumentParser, that parser."""
    from hf_bort.cli import build_parser

    parser = build_parser()
    (sub,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    parsers = {}
    for name, subparser in sub.choices.items():
        full = subparser.get_default("full_parser")
        parsers[name] = full() if full is not None else subparser
    return parsers


def test_every_option_of_every_subcommand_has_help_showing_its_default():
    from hf_bort._cli import HelpFormatter

    parsers = _subcommand_parsers()
    assert {"convert", "count", "demo", "compress", "search", "extract", "distill", "agora", "export", "bench"} <= set(
        parsers
    ) and "push" in parsers
    missing, no_default = [], []
    for name, parser in parsers.items():
        formatter = HelpFormatter(prog=parser.prog)
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                missing.append(label)
                continue
            shown = formatter._get_help_string(action)
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                if "default" not in shown.lower():
                    no_default.append(label)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not show the default: {no_default}"


@pytest.mark.parametrize(
    "command",
    ["convert", "count", "demo", "compress", "search", "extract", "distill", "agora", "export", "bench", "push"],
)
def test_help_of_every_subcommand_exits_0(command, capsys):
    try:
        code = main([command, "--help"])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 0
    assert "usage:" in capsys.readouterr().out


def test_config_dataclass_helps_survive_argparse_formatting():
    from transformers import HfArgumentParser

    from hf_bort.agora.config import AgoraConfig
    from hf_bort.compress.config import CompressionConfig
    from hf_bort.ose.distill import DistillationConfig

    for dtype in (DistillationConfig, AgoraConfig, CompressionConfig):
        assert "usage:" in HfArgumentParser(dtype).format_help()  # a bare % raised ValueError here


def _api_defaults():
    """(command, option dest, the Python API default it mirrors) — the API default read here independently."""
    import inspect
    from dataclasses import MISSING, fields

    from hf_bort.compress.config import CompressionConfig
    from hf_bort.demo import run_demo
    from hf_bort.exporters.bench import BenchConfig
    from hf_bort.exporters.bench_compressed import CompressedBenchConfig
    from hf_bort.exporters.onnx import export_onnx
    from hf_bort.exporters.quantize import Int8Config
    from hf_bort.hub import push_to_hub
    from hf_bort.models.bort import count_parameters
    from hf_bort.ose.distill import DistillationConfig
    from hf_bort.ose.search import OSESearch
    from hf_bort.ose.search_config import SearchConfig

    def parameter(function, name):
        return inspect.signature(function).parameters[name].default

    def field(dtype, name):
        (found,) = [f for f in fields(dtype) if f.name == name]
        return found.default_factory() if found.default_factory is not MISSING else found.default

    rows = [
        ("count", "task", parameter(count_parameters, "task")),
        ("demo", "output_dir", parameter(run_demo, "output_dir")),
        ("demo", "overwrite_output_dir", field(CompressionConfig, "overwrite_output_dir")),
        ("demo", "threads", field(CompressionConfig, "threads")),
        ("distill", "texts", field(SearchConfig, "texts")),
    ]
    for name in ("revision", "token", "commit_message"):
        rows.append(("push", name, parameter(push_to_hub, name)))
    for command in ("search", "extract"):
        for name in ("output_dir", "epsilon", "interval_size", "cost", "seed", "heterogeneous"):
            rows.append((command, name, parameter(OSESearch, name)))
    for dest, name in (
        ("epochs", "num_train_epochs"),
        ("max_steps", "max_steps"),
        ("batch_size", "per_device_train_batch_size"),
        ("learning_rate", "learning_rate"),
    ):
        rows.append(("distill", dest, field(DistillationConfig, name)))
    for name in ("task", "quantize", "opset", "atol", "min_argmax_agreement", "overwrite", "optimize"):
        rows.append(("export", name, parameter(export_onnx, name)))
    for dest, name in (
        ("int8_target", "target"),
        ("int8_best_effort", "best_effort"),
        ("min_label_agreement", "min_label_agreement"),
        ("min_cosine", "min_cosine"),
        ("min_neighbour_agreement", "min_neighbour_agreement"),
        ("int8_threads", "threads"),
    ):
        rows.append(("export", dest, field(Int8Config, name)))
    for name in ("threads", "warmup", "iterations", "max_seconds", "peak_size", "engines", "atol"):
        rows.append(("bench", name, field(BenchConfig, name)))
        assert field(BenchConfig, name) == field(CompressedBenchConfig, name)  # one flag serves both modes
    for name in ("rt_seed", "text_column", "label_column", "test_split", "max_eval_rows", "int8", "int8_target"):
        rows.append(("bench", name, field(CompressedBenchConfig, name)))
    return rows


def test_cli_defaults_equal_the_python_api_defaults():
    parsers = _subcommand_parsers()
    differing = []
    for command, dest, expected in _api_defaults():
        actual = parsers[command].get_default(dest)
        if actual != expected or type(actual) is not type(expected):
            differing.append(f"{command} {dest}: CLI {actual!r}, API {expected!r}")
    assert not differing, differing
    assert parsers["search"].get_default("epsilon") == 0.1  # was 0.2 while OSESearch used 0.1


def test_convert_refuses_a_non_empty_output_unless_overwrite(tmp_path, capsys):
    """Issue 22 item 5: one overwrite rule for every writer (`export` already needed --overwrite)."""
    source = _bert_source(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("mine")
    assert main(["convert", str(source), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert "output_dir" in err and "is not empty; pass overwrite=True (--overwrite) to replace it" in err
    assert (tmp_path / "dst" / "keep.txt").read_text() == "mine"
    assert main(["convert", str(source), str(tmp_path / "dst"), "--overwrite"]) == 0
    assert not (tmp_path / "dst" / "keep.txt").exists() and (tmp_path / "dst" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dst.")]  # no work folder left beside it
    capsys.readouterr()
    from hf_bort import convert_to_bort

    with pytest.raises(ValueError, match="save_directory .* is not empty; pass overwrite=True"):
        convert_to_bort(source, tmp_path / "dst")


def test_supported_families_agree_in_help_readme_and_docs():
    """Issue 22 item 5: `convert --help`, README and docs/compress.md list the same families."""
    from hf_bort.models import SUPPORTED_FAMILIES
    from hf_bort.models.cli import _convert_parser

    root = Path(__file__).resolve().parents[1]
    flat = " ".join(_convert_parser().format_help().split())
    assert SUPPORTED_FAMILIES in flat
    for doc in ("README.md", "docs/compress.md"):
        assert SUPPORTED_FAMILIES in " ".join((root / doc).read_text().split()), doc


def test_readme_says_the_demo_shape_depends_on_the_machine_and_where_the_report_is():
    """Issue 22 item 5: the demo's printed shape came out different on another CPU with the same seed."""
    text = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert "depend on the CPU's floating point" in text
    assert "`runs/demo/compression_report.json`" in text and "`search.candidate` is the shape" in text
