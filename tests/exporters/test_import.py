from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Run in a fresh interpreter where optimum and onnxruntime cannot be imported, as if they were not installed, so the
# test means something even though the test environment has them: a `None` entry in `sys.modules` makes `import`
# raise ModuleNotFoundError and `importlib.util.find_spec` (transformers' availability check) return None.
BLOCKED_RUN = r"""
import importlib.util, json, sys

for name in ("optimum", "onnxruntime"):
    sys.modules[name] = None
assert importlib.util.find_spec("optimum") is None

import hf_bort
import hf_bort.exporters
from hf_bort.cli import build_parser

loaded = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in ("optimum", "onnxruntime")]
report = {"all": hf_bort.exporters.__all__, "loaded": sorted(loaded)}
build_parser().parse_args(["export", "model", "out"])  # the CLI builds without optimum
for call in (hf_bort.exporters.require_onnx, lambda: hf_bort.exporters.export_onnx("model", "out")):
    try:
        call()
        report.setdefault("errors", []).append(None)
    except ImportError as error:
        report.setdefault("errors", []).append(str(error))
print(json.dumps(report))
"""


def test_import_without_optimum_is_fine_and_hint_names_extra():
    """`import hf_bort.exporters` needs no optimum; a missing optimum raises with the install command."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "export_onnx" in report["all"]
    assert report["loaded"] == []  # nothing of optimum / onnxruntime was (or could be) imported
    assert len(report["errors"]) == 2
    for error in report["errors"]:
        assert error is not None and 'pip install "hf-bort[onnx]"' in error


def test_bort_onnx_config_attribute_is_lazy():
    import hf_bort.exporters.onnx as onnx_module

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        onnx_module.Nope  # noqa: B018
