"""Shared pieces of the `hf-bort` subcommands: help with defaults, defaults read from the Python API, `--config`."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """
    argparse's `ArgumentDefaultsHelpFormatter` that leaves out defaults that say nothing: `None` (the help says what
    happens then), `False` of a switch, and helps that already name their default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def dashes_first(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """
    Puts the dashed spelling of each option first (`--output-dir`, then HfArgumentParser's `--output_dir` alias), so
    usage and help show the one flag style of `hf-bort`; parsing is unchanged (both spellings are accepted).
    """
    for action in parser._actions:
        action.option_strings.sort(key=lambda option: "_" in option)  # stable: dashed spellings first
    return parser


def api_default(api: Any, name: str) -> Any:
    """
    The default of `name` in the Python API `api`: a dataclass field (its `default` or `default_factory()`) or a
    parameter of a function or class constructor. The CLI reads its defaults here so that they cannot drift.
    """
    if dataclasses.is_dataclass(api):
        for field in dataclasses.fields(api):
            if field.name == name:
                if field.default is not dataclasses.MISSING:
                    return field.default
                if field.default_factory is not dataclasses.MISSING:
                    return field.default_factory()
                raise ValueError(f"{api.__name__}.{name} has no default.")
        raise ValueError(f"{api.__name__} has no field {name!r}.")
    parameter = inspect.signature(api).parameters.get(name)
    if parameter is None:
        raise ValueError(f"{getattr(api, '__name__', api)} has no parameter {name!r}.")
    if parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{getattr(api, '__name__', api)}'s {name!r} has no default.")
    return parameter.default


CONFIG_HELP = (
    "A .yaml/.yml or .json file of settings (field names as keys, e.g. `output_dir: out`); flags given on the "
    "command line override them."
)


def read_config_file(path: str | Path, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    """
    The settings of a `--config` file, checked against the fields of `dataclass_types`: an unknown key is an error
    that names it (and the file), before any work.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config: {str(path)!r} is not a file.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"--config {path}: not valid YAML: {error}") from error
    elif path.suffix.lower() == ".json":
        import json

        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config {path}: not valid JSON: {error}") from error
    else:
        raise ValueError(f"--config: {str(path)!r} must end in .yaml, .yml or .json.")
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(
            f"--config {path}: expected a mapping of setting names to values, got {type(values).__name__}."
        )
    known = {field.name for dtype in dataclass_types for field in dataclasses.fields(dtype) if field.init}
    unknown = sorted(str(key).replace("-", "_") for key in values if str(key).replace("-", "_") not in known)
    if unknown:
        raise ValueError(
            f"--config {path}: unknown key(s) {', '.join(unknown)} (not settings of "
            f"{' / '.join(dtype.__name__ for dtype in dataclass_types)}; `--help` lists them)."
        )
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def config_to_argv(values: dict[str, Any]) -> list[str]:
    """`--flag value` arguments for HfArgumentParser from a `--config` mapping (given first: later flags win)."""
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            raise ValueError(f"--config: `{name}: null` cannot be set from a file; leave the key out for its default.")
        if isinstance(value, (list, tuple)):
            argv += [flag, *(str(item) for item in value)]
        elif isinstance(value, dict):
            import json

            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv


def split_config_argument(argv: list[str]) -> tuple[str | None, list[str]]:
    """Takes `--config FILE` (or `--config=FILE`) out of `argv`; the last one given wins."""
    config, rest, index = None, [], 0
    while index < len(argv):
        item = argv[index]
        if item == "--config":
            if index + 1 >= len(argv):
                raise ValueError("--config needs a file: --config settings.yaml")
            config, index = argv[index + 1], index + 2
            continue
        if item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
        index += 1
    return config, rest


def parse_dataclasses(parser, argv: list[str]) -> tuple:
    """
    `parser.parse_args_into_dataclasses(argv)` (an `HfArgumentParser`) with `--config FILE` read first: the file's
    settings become flags placed before `argv`, so the command line overrides them.
    """
    config, argv = split_config_argument(list(argv))
    if config is not None:
        argv = [*config_to_argv(read_config_file(config, tuple(parser.dataclass_types))), *argv]
    outputs = parser.parse_args_into_dataclasses(argv)
    # options the parser has beside its dataclasses' (`--config`, None here) come back as a trailing Namespace
    return tuple(output for output in outputs if not isinstance(output, argparse.Namespace))
