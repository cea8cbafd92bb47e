"""
`push_to_hub`: one model folder (weights, code for `trust_remote_code`, tokenizer, ONNX files, card, plots, report)
to a Hub repository in one commit (`HfApi.create_repo` + `HfApi.create_commit`); `hf-bort push DIR REPO_ID`.

Every check runs before anything is uploaded and, in `compress`, before any training: the repo id's form, that the
Hub is not switched off (`HF_HUB_OFFLINE`), that a token exists (`--token`, `HF_TOKEN`, or `hf auth login`) and
that the Hub accepts it (`whoami`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cli import api_default, check_strings

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
# What a push uploads, by file name (as `upload_folder(allow_patterns=...)`): the files hf_bort and transformers write
# into a model folder: card, configs, weights, remote code, tokenizer, ONNX, sentence-transformers modules, reports,
# plots. Anything else (a `.env`, notes, data) stays local and is listed as left out.
ALLOW_PATTERNS = (
    CARD_NAME,
    "config.json",  # also a sentence-transformers module's (1_Pooling/config.json)
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
    "training_args.bin",
    "*.py",  # modeling / configuration code for trust_remote_code
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",  # sentencepiece
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "*.onnx",
    "*.onnx_data",
    "*.onnx.data",
    "ort_config.json",
    "*_report.json",  # compression_report.json, quantization_report.json
    "bench*.json",
    "bench*.md",
    "*.png",  # front.png, benchmark plots
)
# Folders never uploaded (besides every dot-folder): caches, Trainer checkpoints and logs.
IGNORED_FOLDERS = ("__pycache__", "checkpoint-*", "runs")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.onnx")
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
# A loading snippet's repo argument: a JSON string literal (the card template writes it with `tojson`).
_SNIPPET_ID = re.compile(r'((?:\.from_pretrained|SentenceTransformer)\()"(?:[^"\\]|\\.)*"')
_TITLE = re.compile(r"^# .*$", re.MULTILINE)  # the card's first level-1 heading (hf_bort cards: the model's name)


class HubPushError(ValueError):
    """A push cannot happen: bad repo id or folder, the Hub switched off or unreachable, no or a rejected token."""


def check_repo_id(repo_id: Any, field: str = "repo_id") -> str:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise HubPushError(f"`{field}` must be a Hub repository id like 'user/model-name', got {repo_id!r}.")
    return repo_id


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or value.strip().upper() in ("1", "ON", "YES", "TRUE")


def check_push_ready(repo_id: str, token: str | None = None, field: str = "repo_id") -> str:
    """
    Raises [`HubPushError`] unless `repo_id` is well formed, the Hub is on, a token is found and the Hub accepts
    it; returns the token. Run it before long work.
    """
    from huggingface_hub import HfApi, get_token

    check_repo_id(repo_id, field)
    if _offline():
        raise HubPushError(
            "Cannot push to the Hub: HF_HUB_OFFLINE is set. Unset it (and have network access) to push, or push "
            "later with `hf-bort push DIR REPO_ID`."
        )
    token = token or get_token()
    if not token:
        raise HubPushError(
            "Cannot push to the Hub: no token. Log in with `hf auth login` (or `huggingface-cli login`), set "
            "HF_TOKEN, or pass --token."
        )
    try:
        HfApi(token=token).whoami()
    except Exception as error:  # network errors, 401: all mean the push would fail later
        raise HubPushError(f"Cannot push to the Hub: it is unreachable or refused the token ({error}).") from error
    return token


def _allowed(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in ALLOW_PATTERNS)


def folder_contents(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """
    (files a push uploads, what it leaves out) under `folder`: uploaded are the files whose name matches
    `ALLOW_PATTERNS`, never a dotfile or dot-folder (`.env`, `.git/`), a cache or checkpoint folder, a link to a
    folder, or a link to a file outside `folder`. Relative POSIX paths, sorted; each left-out entry says why.
    """
    root = Path(folder).resolve()
    files, left_out = [], []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        for name in sorted(dirnames):
            relative = (here / name).relative_to(root).as_posix()
            why = None
            if (here / name).is_symlink():
                why = "a link to a folder"
            elif name.startswith("."):
                why = "a dot-folder"
            elif any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED_FOLDERS):
                why = "a cache, checkpoint or log folder"
            if why:
                dirnames.remove(name)
                left_out.append(f"{relative}/ ({why})")
        for name in filenames:
            path = here / name
            relative = path.relative_to(root).as_posix()
            why = None
            if name.startswith("."):
                why = "a dotfile"
            elif path.is_symlink() and not path.resolve().is_relative_to(root):
                why = "a link to outside the folder"
            elif not path.is_file():
                why = "not a regular file"
            elif not _allowed(name):
                why = "not a file hf_bort or transformers writes"
            if why:
                left_out.append(f"{relative} ({why})")
            else:
                files.append(relative)
    return sorted(files), sorted(left_out)


def files_to_push(folder: str | os.PathLike) -> list[str]:
    """Files under `folder` that a push uploads (relative POSIX paths, sorted; see [`folder_contents`])."""
    return folder_contents(folder)[0]


def check_folder(folder: str | os.PathLike) -> list[str]:
    """
    Raises [`HubPushError`] unless `folder` holds a model card, weights (safetensors, bin or ONNX) and, when its
    `config.json` maps Auto classes to code (`auto_map`), that code; returns the files to push (see
    [`folder_contents`]) and logs a warning naming what is left out.
    """
    return _check_folder(folder)[0]


def _check_folder(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """[`check_folder`]'s checks; (files to push, left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HubPushError(f"Cannot push {folder}: not a folder.")
    files, left_out = folder_contents(folder)
    if left_out:
        logger.warning("Not pushed from %s (only the files hf_bort writes are): %s", folder, "; ".join(left_out))
    if CARD_NAME not in files:
        raise HubPushError(
            f"Cannot push {folder}: no {CARD_NAME} model card. hf_bort writes one beside every model it saves; "
            "for another folder write one with `hf_bort.cards.save_card`."
        )
    if not any(fnmatch.fnmatch(Path(f).name, pattern) for f in files for pattern in WEIGHT_PATTERNS):
        raise HubPushError(f"Cannot push {folder}: no weights (*.safetensors, pytorch_model*.bin or *.onnx).")
    config = folder / "config.json"
    if config.is_file():
        auto_map = json.loads(config.read_text()).get("auto_map") or {}
        code = {v.split(".")[0] + ".py" for v in auto_map.values() if isinstance(v, str) and "--" not in v}
        missing = sorted(_with_relative_imports(folder, code) - set(files))
        if missing:
            raise HubPushError(
                f"Cannot push {folder}: config.json's auto_map needs {missing} for trust_remote_code, and they are "
                "missing (save the model with save_pretrained after `import hf_bort`)."
            )
    if not any(name in files for name in ("tokenizer_config.json", "tokenizer.json")):
        logger.warning("%s holds no tokenizer: users of the pushed model will need their own.", folder)
    return files, left_out


# A module-level relative import (`from .modeling_bort_layers import ...`), as transformers finds the files that must
# travel with remote code (`dynamic_module_utils.get_relative_imports`).
_RELATIVE_IMPORT = re.compile(r"^\s*(?:import\s+\.(\S+)\s*$|from\s+\.(\S+)\s+import)", flags=re.MULTILINE)


def _with_relative_imports(folder: Path, code: set[str]) -> set[str]:
    """`code` (file names beside `folder`'s config.json) and, transitively, the modules beside them they import."""
    needed, todo = set(), sorted(code)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if (folder / name).is_file():
            found = _RELATIVE_IMPORT.findall((folder / name).read_text(encoding="utf-8", errors="replace"))
            todo += [(plain or relative) + ".py" for plain, relative in found]
    return needed


def card_for_repo(text: str, repo_id: str) -> str:
    """An hf_bort card's title, loading snippets and model-index name pointed at `repo_id` (other cards: unchanged)."""
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    tags = getattr(card.data, "tags", None) or []
    if "hf_bort" not in tags:
        return text
    if getattr(card.data, "eval_results", None):
        card.data.model_name = repo_id.split("/")[-1]
    card.text = _SNIPPET_ID.sub(lambda m: f'{m.group(1)}"{repo_id}"', card.text)
    card.text = _TITLE.sub(f"# {repo_id.split('/')[-1]}", card.text, count=1)  # the title is the repo's name
    return str(card)


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> dict[str, Any]:
    """
    Uploads the model files of `folder` (those hf_bort and transformers write: see [`folder_contents`]; never a
    dotfile such as `.env` or a link out of the folder) to the model repository `repo_id` in one commit, creating
    the repository (and the branch `revision`) when missing. The uploaded `README.md` has its loading snippets
    pointed at `repo_id`; the local one is left as it is. Returns the repo id, revision, files, the files left out
    (each with why) and the commit URL.

    Example:

    ```python
    >>> from hf_bort.hub import push_to_hub
    >>> push_to_hub("compressed/student", "me/bort-minilm-rt", private=True)  # doctest: +SKIP
    ```
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    if private is not None and not isinstance(private, bool):
        raise HubPushError(f"`private` must be True, False or None, got {private!r}.")
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise HubPushError(f"`revision` must be a non-empty branch name, got {revision!r}.")
    folder = Path(folder)
    files, left_out = _check_folder(folder)
    token = check_push_ready(repo_id, token)
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    repo_id = getattr(repo, "repo_id", None) or repo_id
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    operations = []
    for name in files:
        content: Any = str(folder / name)
        if name == CARD_NAME:
            content = card_for_repo((folder / name).read_text(encoding="utf-8"), repo_id).encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {folder.name or 'model'} with hf_bort",
        repo_type="model",
        revision=revision,
    )
    return {
        "repo_id": repo_id,
        "revision": revision or "main",
        "files": files,
        "left_out": left_out,
        "commit_url": getattr(info, "commit_url", None),
    }


@dataclass
class PushArguments:
    """Settings of `hf-bort push FOLDER REPO_ID` (defaults: `push_to_hub`'s)."""

    folder: str = field(metadata={"help": "The model folder, e.g. OUTPUT/student of `hf-bort compress`."})
    repo_id: str = field(metadata={"help": "Hub repository, e.g. user/bort-minilm-rt (created when missing)."})
    private: bool = field(default=False, metadata={"help": "Create the repository private (default: public)."})
    revision: str | None = field(
        default=api_default(push_to_hub, "revision"),
        metadata={"help": "Branch to commit to, created when missing (default: main)."},
    )
    token: str | None = field(
        default=api_default(push_to_hub, "token"),
        metadata={"help": "Hub token (default: HF_TOKEN or the one `hf auth login` saved)."},
    )
    commit_message: str | None = field(
        default=api_default(push_to_hub, "commit_message"),
        metadata={"help": "Commit message (default: 'Upload FOLDER with hf_bort')."},
    )

    def __post_init__(self) -> None:
        check_strings(self, "folder", what="a model folder")
        check_repo_id(self.repo_id)


def _push_parser():
    from ._cli import command_parser

    return command_parser(
        PushArguments, "hf-bort push", "Upload a model folder to the Hub in one commit.", ("folder", "repo_id")
    )


def parse_push(argv: list[str]) -> PushArguments:
    from ._cli import parse_dataclasses

    (args,) = parse_dataclasses(_push_parser(), argv, ("folder", "repo_id"))
    return args


def _push(argv: list[str]) -> int:
    args = parse_push(argv)
    result = push_to_hub(
        args.folder,
        args.repo_id,
        private=True if args.private else None,
        revision=args.revision,
        token=args.token,
        commit_message=args.commit_message,
    )
    print(json.dumps(result))
    return 0


def add_commands(subparsers) -> None:
    """Adds `push` to the `hf-bort` sub-commands."""
    from ._cli import add_command

    add_command(
        subparsers,
        "push",
        help="Upload a model folder (weights, code, tokenizer, ONNX, card, plots, report) to the Hub in one commit.",
        parser=_push_parser,
        run=_push,
    )
