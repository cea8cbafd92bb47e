"""`benchmarks/textpruner_rt.py --losses kd_es` refuses task-stage settings the early-stopped recipe cannot run."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def textpruner_rt(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("textpruner_rt")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task-patience", "-1"], "--task-patience must be >= 0"),
        (["--task-max-epochs", "2"], r"--task-max-epochs \(2\) must be >= --task-epochs \(3.0\)"),
    ],
)
def test_bad_task_stage_settings_are_refused_naming_the_flag(textpruner_rt, capsys, argv, message):
    with pytest.raises(SystemExit):
        textpruner_rt.parse_args(["--losses", "kd_es", *argv])
    assert re.search(message, capsys.readouterr().err)


def test_patience_zero_runs_exactly_the_task_epochs_whatever_the_cap(textpruner_rt):
    args = textpruner_rt.parse_args(["--losses", "kd_es", "--task-patience", "0", "--task-max-epochs", "2"])
    assert (args.task_patience, args.task_epochs, args.losses) == (0, 3.0, ["kd_es"])
