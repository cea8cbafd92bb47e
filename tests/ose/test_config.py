"""`OSEConfig`: one definition per search setting, for OSESearch, the search and extract CLI, CompressionConfig."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
from transformers import BertConfig, BertModel

from hf_bort import CompressionConfig, OSEConfig, OSESearch
from hf_bort.ose.config import CONFIG_NAME, check_setting, mirrored_fields
from hf_bort.ose.search_config import SearchConfig
from tiny_shapes import TINY_SHAPE

OSE_FIELDS = [spec.name for spec in dataclasses.fields(OSEConfig)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epsilon": 0}, r"`epsilon` must be a number in \(0, 1\]"),
        ({"epsilon": math.nan}, r"`epsilon` must be a number in \(0, 1\]"),
        ({"interval_size": 0}, "`interval_size` must be a positive integer or None"),
        ({"batch_size": True}, "`batch_size` must be a positive integer"),
        ({"learning_rate": -1.0}, "`learning_rate` must be a finite number > 0"),
        ({"alpha_kd": -0.5}, "`alpha_kd` must be a finite number >= 0"),
        ({"cost": "flops"}, r"`cost` must be one of \('multiply_adds', 'latency_ms'\)"),
        ({"objective": "mse"}, "`objective` must be one of"),
        ({"layer_selection": "last"}, "`layer_selection` must be one of"),
        ({"layers": "2,x"}, "`layers` must be comma-separated positive integers"),
        ({"output_dir": " "}, "`output_dir` must be a non-empty path"),
        ({"seed": 1.5}, "`seed` must be an integer"),
        ({"heterogeneous": "yes"}, "`heterogeneous` must be True or False"),
        ({"max_latency_ms": 3.0}, "`max_latency_ms` needs cost='latency_ms'"),
    ],
)
def test_every_setting_is_checked_naming_it(settings, message):
    with pytest.raises(ValueError, match=message):
        OSEConfig(**settings)


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path):
    config = OSEConfig(epsilon=0.2, layers="2,4", cost="latency_ms", max_latency_ms=5.0, prune=False)
    path = config.save_pretrained(tmp_path / "run")
    assert path == tmp_path / "run" / CONFIG_NAME
    assert OSEConfig.from_pretrained(tmp_path / "run") == config
    assert OSEConfig.from_pretrained(path, seed=3) == dataclasses.replace(config, seed=3)
    path.write_text('{"epsilon": 0.2, "bogus": 1}')
    with pytest.raises(ValueError, match=r"unknown OSEConfig settings \['bogus'\]"):
        OSEConfig.from_pretrained(tmp_path / "run")
    path.write_text('{"epsilon": 2}')
    with pytest.raises(ValueError, match="`epsilon`"):
        OSEConfig.from_pretrained(path)


def test_the_run_id_settings_come_from_the_config():
    # the keys the search's run id had before OSEConfig (stored runs keep their id and resume)
    assert set(OSEConfig().run_id_settings()) == {
        "batch_size",
        "max_length",
        "lr",
        "temperature",
        "alpha_ce",
        "alpha_kd",
        "seed",
        "importance",
        "calibration_batches",
        "heterogeneous",
        "layer_selection",
        "freeze_embeddings",
        "num_eval_batches",
        "cost",
        "sequence_length",
    }
    assert OSEConfig(learning_rate=3e-4).run_id_settings()["lr"] == 3e-4


def test_the_keyword_form_builds_the_config(tmp_path, texts, bert_tok):
    source = BertModel(BertConfig(**TINY_SHAPE))
    kwargs = dict(epsilon=0.5, batch_size=4, layers="1", output_dir=str(tmp_path / "run"))
    by_keywords = OSESearch(source, text_dataset=texts, tokenizer=bert_tok, **kwargs)
    by_config = OSESearch(source, config=OSEConfig(**kwargs), text_dataset=texts, tokenizer=bert_tok)
    assert by_keywords.config == by_config.config == OSEConfig(**kwargs)
    assert (by_keywords.epsilon, by_keywords.batch_size, by_keywords.max_steps) == (0.5, 4, 8)
    assert {c.num_layers for c in by_keywords.space.candidates()} == {1}  # the axes shape the default space
    replaced = OSESearch(source, config=OSEConfig(**kwargs), text_dataset=texts, tokenizer=bert_tok, seed=7)
    assert replaced.config.seed == 7 and replaced.config.epsilon == 0.5
    with pytest.raises(TypeError, match="bogus"):
        OSESearch(source, text_dataset=texts, bogus=1)
    with pytest.raises(ValueError, match="`interval_size`"):
        OSESearch(source, text_dataset=texts, interval_size=0)
    # help(OSESearch) and the CLI's API defaults see every setting as a keyword with OSEConfig's default
    parameters = inspect.signature(OSESearch).parameters
    for spec in dataclasses.fields(OSEConfig):
        assert parameters[spec.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[spec.name].default == spec.default


@pytest.mark.parametrize("command", ["search", "extract"])
def test_every_ose_setting_has_a_cli_flag_with_its_default(command):
    from hf_bort.ose.cli import _extract_parser, _search_parser

    parser = _search_parser() if command == "search" else _extract_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    for name in OSE_FIELDS:
        assert "--" + name.replace("_", "-") in flags, name
        if name != "max_cost_ratio":  # on the command line: the budget of best.json (see search_config)
            assert parser.get_default(name) == getattr(OSEConfig(), name), name


def test_search_config_mirrors_every_setting_but_the_best_budget():
    assert set(mirrored_fields(SearchConfig).values()) == set(OSE_FIELDS) - {"max_cost_ratio"}
    config = SearchConfig("src", epsilon=0.5, layers="1,2", max_cost_ratio=0.3)
    assert config.to_ose_config() == OSEConfig(epsilon=0.5, layers="1,2")  # the budget does not limit the search
    with pytest.raises(ValueError, match="`layers` must be comma-separated"):
        SearchConfig("src", layers="x")


# Compress's search flags (unchanged names) and the OSEConfig field each one mirrors.
COMPRESS_FLAGS = {
    "epsilon": "epsilon",
    "search_base_steps": "base_steps",
    "search_interval": "interval_size",
    "search_batch_size": "batch_size",
    "search_learning_rate": "learning_rate",
    "search_layers": "layers",
    "search_heads": "heads",
    "search_hidden": "hidden",
    "search_intermediate": "intermediate",
    "layer_selection": "layer_selection",
    "latency_engine": "latency_engine",
}


def test_compression_config_search_fields_mirror_ose_config():
    from hf_bort.compress.cli import _parser

    assert mirrored_fields(CompressionConfig) == COMPRESS_FLAGS
    flags = {option for action in _parser()._actions for option in action.option_strings}
    assert {"--" + name.replace("_", "-") for name in (*COMPRESS_FLAGS, "search_eval_rows")} <= flags
    help_of = {spec.name: spec.metadata["help"] for spec in dataclasses.fields(CompressionConfig)}
    ose_help = {spec.name: spec.metadata["help"] for spec in dataclasses.fields(OSEConfig)}
    for name, setting in COMPRESS_FLAGS.items():  # OSEConfig's help, less its "(default: …)" note
        assert help_of[name].startswith(ose_help[setting].split(" (default:")[0].rstrip(".")), name
    assert "default" not in help_of["search_interval"]  # the help formatter then shows compress's default, 16
    with pytest.raises(ValueError, match="`search_interval` must be a positive integer"):
        CompressionConfig(model="m", dataset="d", search_interval=0, measure_onnx=False)
    with pytest.raises(ValueError, match="`latency_engine` must be one of"):
        CompressionConfig(model="m", dataset="d", latency_engine="tensorrt", measure_onnx=False)
    check_setting("interval_size", 3, "search_interval")


def test_compression_config_builds_the_search_config(tmp_path):
    config = CompressionConfig(
        model="m", dataset="d", measure_onnx=False, epsilon=0.5, search_interval=2, search_layers="1,2", seed=3
    )
    search = config.search_config(tmp_path, dev_rows=100)
    # what compress gave OSESearch as keywords before OSEConfig
    expected = dict(
        output_dir=str(tmp_path / "search"),
        epsilon=0.5,
        interval_size=2,
        max_steps=64,
        batch_size=16,
        eval_batch_size=64,
        num_eval_batches=2,
        max_train_batches=64,
        learning_rate=1e-4,
        seed=3,
        cost="multiply_adds",
        sequence_length=128,
        latency_engine="onnxruntime",
        max_cost_ratio=0.25,
        max_multiply_adds_ratio=None,
        max_latency_ms=None,
        layer_selection="importance",
        show_progress=True,
    )
    assert {name: getattr(search, name) for name in expected} == expected
    assert search.layers == "1,2"
    latency = CompressionConfig(
        model="m", dataset="d", measure_onnx=False, max_latency_ratio=0.5, max_cost_ratio=0.4, latency_engine="pytorch"
    ).search_config(tmp_path, dev_rows=10)
    assert (latency.cost, latency.max_cost_ratio, latency.max_multiply_adds_ratio) == ("latency_ms", 0.5, 0.4)
