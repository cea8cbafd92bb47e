from __future__ import annotations

import argparse
import inspect
import json

from transformers import BertConfig, BertModel

from hf_bort.ose.cli import add_commands


def _parser():
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_search_then_extract_then_distill(tmp_path, bert_tok, texts):
    from tiny_shapes import TINY_SHAPE

    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tok.save_pretrained(source)
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    common = [str(source), "--texts", str(tmp_path / "texts.txt"), "--output-dir", str(tmp_path / "run")]
    grid = ["--layers", "1,2", "--heads", "2,4", "--hidden", "32", "--intermediate", "8", "--epsilon", "1.0"]
    args = _parser().parse_args(["search", *common, *grid])
    assert args.func(args) == 0
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert (tmp_path / "run" / "front.png").is_file() and best["steps"] == 4
    args = _parser().parse_args(["extract", *common, *grid, str(tmp_path / "student")])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "student" / "config.json").read_text())["model_type"] == "bort"
    args = _parser().parse_args(
        [
            "distill",
            str(tmp_path / "student"),
            str(source),
            str(tmp_path / "distilled"),
            "--texts",
            str(tmp_path / "texts.txt"),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "distilled" / "config.json").is_file()


def test_search_in_a_folder_in_use_exits_2_naming_the_other_process(tmp_path, bert_tok, texts, held_lock, capsys):
    from hf_bort.cli import main
    from tiny_shapes import TINY_SHAPE

    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tok.save_pretrained(source)
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    holder = held_lock(tmp_path / "run" / ".hf_bort.lock")
    argv = ["search", str(source), "--texts", str(tmp_path / "texts.txt"), "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert f"in use by another process (pid {holder.pid} " in capsys.readouterr().err
    assert not (tmp_path / "run" / "front.md").exists()


def test_search_settings_are_a_search_config(tmp_path):
    import pytest

    from hf_bort.ose.cli import parse_search
    from hf_bort.ose.search import OSESearch

    config = parse_search(["src", "--interval-size", "3", "--max-cost-ratio", "0.5", "--output_dir", "run"])
    assert (config.source, config.interval_size, config.max_cost_ratio, config.output_dir) == ("src", 3, 0.5, "run")
    assert config.epsilon == inspect.signature(OSESearch).parameters["epsilon"].default
    (tmp_path / "search.yaml").write_text("source: from-file\nepsilon: 0.5\nlayers: '1,2'\nseed: 3\n")
    config = parse_search(["--config", str(tmp_path / "search.yaml"), "--seed", "4"])
    assert (config.source, config.epsilon, config.layers, config.seed) == ("from-file", 0.5, "1,2", 4)
    with pytest.raises(ValueError, match="--max-cost-ratio must be a number in"):
        parse_search(["src", "--max-cost-ratio", "2"])


def test_search_config_builds_the_ose_search(tmp_path, bert_tok, texts):
    from hf_bort.ose.search_config import SearchConfig
    from tiny_shapes import TINY_SHAPE

    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tok.save_pretrained(source)
    config = SearchConfig(str(source), output_dir=str(tmp_path / "run"), epsilon=0.5, layers="1", heads="2")
    search = config.to_search(list(texts))
    assert search.epsilon == 0.5 and {c.num_layers for c in search.space.candidates()} == {1}


def test_search_sequence_length_defaults_to_the_api_and_reaches_the_search(tmp_path, bert_tok, texts):
    from hf_bort.ose.cli import parse_extract, parse_search
    from hf_bort.ose.search import OSESearch
    from tiny_shapes import TINY_SHAPE

    default = inspect.signature(OSESearch).parameters["sequence_length"].default
    assert parse_search(["src"]).sequence_length == default
    assert parse_extract(["src", "out"])[1].sequence_length == default
    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tok.save_pretrained(source)
    config = parse_search([str(source), "--sequence-length", "48", "--output-dir", str(tmp_path / "run")])
    assert config.to_search(list(texts)).sequence_length == 48


def test_search_writes_best_json_before_plotting(tmp_path, bert_tok, texts, monkeypatch):
    """A plotting failure (matplotlib missing or broken) comes after best.json and front.md are written."""
    import pytest

    from hf_bort.ose.results import SearchResult
    from tiny_shapes import TINY_SHAPE

    def broken_plot(self, path):
        raise RuntimeError("no matplotlib")

    monkeypatch.setattr(SearchResult, "plot", broken_plot)
    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tok.save_pretrained(source)
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    argv = ["search", str(source), "--texts", str(tmp_path / "texts.txt"), "--output-dir", str(tmp_path / "run")]
    args = _parser().parse_args([*argv, "--layers", "1", "--heads", "2", "--hidden", "32", "--intermediate", "8"])
    with pytest.raises(RuntimeError, match="no matplotlib"):
        args.func(args)
    assert json.loads((tmp_path / "run" / "best.json").read_text())["candidate"]
    assert (tmp_path / "run" / "front.md").is_file()
