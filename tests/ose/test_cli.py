from __future__ import annotations

import argparse
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


def test_search_sequence_length_flag_defaults_to_the_api_and_reaches_the_search(monkeypatch):
    import inspect

    import hf_bort.ose.search as search_module
    import hf_bort.ose.space as space_module
    from hf_bort.ose.cli import _search_from_args

    default = inspect.signature(search_module.OSESearch.__init__).parameters["sequence_length"].default
    assert _parser().parse_args(["search", "src"]).sequence_length == default
    args = _parser().parse_args(["search", "src", "--sequence-length", "48", "--texts", __file__])
    captured = {}
    monkeypatch.setattr(space_module.SearchSpace, "from_source", classmethod(lambda cls, *a, **k: "space"))
    monkeypatch.setattr(search_module, "OSESearch", lambda *a, **kwargs: captured.update(kwargs))
    _search_from_args(args)
    assert captured["sequence_length"] == 48
