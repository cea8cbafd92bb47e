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


def check_strings(settings: Any, *names: str, what: str = "a path or Hub id") -> None:
    """Each field `names` of `settings` must be a non-empty string: the error names the field (for `__post_init__`)."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"`{name}` must be {what}, got {value!r}.")


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


def parse_dataclasses(parser, argv: list[str], positionals: tuple[str, ...] = ()) -> tuple:
    """
    `parser.parse_args_into_dataclasses(argv)` (an `HfArgumentParser`) with `--config FILE` read first: the file's
    settings become flags placed before `argv`, so the command line overrides them. Arguments without dashes are
    the fields `positionals`, in order (`hf-bort convert SOURCE OUTPUT_DIR`), wherever they stand.
    """
    config, argv = split_config_argument(list(argv))
    file_values = read_config_file(config, tuple(parser.dataclass_types)) if config is not None else {}
    if positionals:
        tokens, argv = split_positionals(parser, argv)
        argv = [*positional_flags(parser, tuple(positionals), tokens, argv, file_values), *argv]
    argv = [*config_to_argv(file_values), *argv]
    outputs = parser.parse_args_into_dataclasses(argv)
    # options the parser has beside its dataclasses' (`--config`, None here) come back as a trailing Namespace
    return tuple(output for output in outputs if not isinstance(output, argparse.Namespace))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def command_parser(dataclass_types, prog: str, description: str, positionals: tuple[str, ...] = (), **kwargs):
    """
    The `HfArgumentParser` of one `hf-bort` command: its dataclasses' fields as dashed flags with their help and
    defaults, `--config FILE`, and a usage line that shows the positional fields first.
    """
    from transformers import HfArgumentParser

    if positionals:
        shown = ", ".join(f"{name.upper()} (= {_flag(name)})" for name in positionals)
        description += f" Positional arguments: {shown}."
    parser = HfArgumentParser(
        dataclass_types, prog=prog, description=description, formatter_class=HelpFormatter, **kwargs
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    variadic = {action.dest for action in parser._actions if action.nargs in ("+", "*")}
    shown = [f"[{name.upper()} ...]" if name in variadic else name.upper() for name in positionals]
    parser.usage = " ".join([prog, *shown, "[--option VALUE ...] [--config FILE]"])
    return dashes_first(parser)


def add_command(subparsers, name: str, *, help: str, parser, run, help_parser=None, help_if_empty: bool = False):
    """
    Adds `hf-bort NAME`: every argument goes to `run(argv)` (which parses it with HfArgumentParser); `-h`/`--help`
    print `help_parser()` (default `parser()`). `parser` is kept as the sub-parser's `full_parser` default.
    """
    sub = subparsers.add_parser(
        name,
        help=help,
        description=f"See `hf-bort {name} --help`.",
        add_help=False,
        prefix_chars="+",  # every --option goes to HfArgumentParser, not to argparse's sub-parser
    )
    sub.add_argument("arguments", nargs=argparse.REMAINDER, help="Arguments and flags (see --help).")

    def dispatch(args: argparse.Namespace) -> int:
        argv = list(args.arguments)
        if (help_if_empty and not argv) or "-h" in argv or "--help" in argv:
            (help_parser or parser)().print_help()
            return 0
        return run(argv)

    sub.set_defaults(func=dispatch, full_parser=parser)
    return sub


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f", "1", "0"}


def split_positionals(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """
    `(positional tokens, the other arguments)`: a positional token is one that is neither an option nor the value of
    the option before it (read from the parser's `nargs`), wherever it stands (`extract SOURCE --texts F SAVE_DIR`).
    A switch (`--heterogeneous`) takes a following `true`/`false` but never a path.
    """
    actions = _option_actions(parser)
    positional, rest, index = [], [], 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            positional += argv[index:]
            break
        if not token.startswith("-"):
            positional.append(token)
            continue
        rest.append(token)
        name = token.split("=", 1)[0]
        matches = {action for option, action in actions.items() if option.startswith(name)}
        action = actions.get(name) or (matches.pop() if len(matches) == 1 else None)  # argparse's abbreviations
        if action is None:  # its value would be taken for a positional argument: name the option instead
            raise ValueError(f"unknown option {name} (`{parser.prog} --help` lists them).")
        if "=" in token:
            continue
        nargs = action.nargs
        if nargs is None:
            take = 1
        elif nargs == "?":
            following = argv[index] if index < len(argv) else ""
            switch = action.const is True
            take = int(
                bool(following) and not following.startswith("-") and (not switch or following.lower() in _BOOL_WORDS)
            )
        elif nargs in ("+", "*"):
            take = 0
            while index + take < len(argv) and not argv[index + take].startswith("-"):
                take += 1
        else:
            take = nargs if isinstance(nargs, int) else 0
        rest += argv[index : index + take]
        index += take
    return positional, rest


def _given(parser: argparse.ArgumentParser, dest: str, argv: list[str], file_values: dict[str, Any]) -> bool:
    if dest in file_values:
        return True
    options = {option for option, action in _option_actions(parser).items() if action.dest == dest}
    return any(item.split("=", 1)[0] in options for item in argv if item.startswith("-"))


def positional_flags(
    parser: argparse.ArgumentParser,
    names: tuple[str, ...],
    tokens: list[str],
    argv: list[str],
    file_values: dict[str, Any],
) -> list[str]:
    """
    `--field value` flags for the positional `tokens`, matched to the fields `names` in order (a list field last takes
    the rest). A required field given neither positionally, nor as a flag, nor in `--config` is an error naming it.
    """
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    flags: list[str] = []
    tokens = list(tokens)
    for position, name in enumerate(names, start=1):
        action = actions[name]
        flag = "--" + name.replace("_", "-")
        if tokens:
            variadic = action.nargs in ("+", "*")
            taken, tokens = (tokens, []) if variadic else (tokens[:1], tokens[1:])
            flags += [flag, *taken]
        elif action.required and not _given(parser, name, argv, file_values):
            usage = " ".join(n.upper() for n in names)
            raise ValueError(
                f"missing {name.upper()} (`{name}`): give it as argument {position} ({parser.prog} {usage} ...), "
                f"as {flag}, or in --config."
            )
    if tokens:
        raise ValueError(
            f"unexpected argument(s) {' '.join(tokens)}: {parser.prog} takes "
            f"{' '.join(n.upper() for n in names) or 'no positional arguments'}, then --options."
        )
    return flags
