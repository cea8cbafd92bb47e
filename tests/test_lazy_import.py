"""`import hf_bort` is light: it registers the Bort model family with transformers' Auto classes and imports nothing
of the training, data or export stacks until a name that needs them is used (trl's lazy-module pattern)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("transformers.trainer", "datasets", "optimum", "onnxruntime", "peft")
STAGES = ("hf_bort.agora", "hf_bort.compress", "hf_bort.exporters", "hf_bort.ose", "hf_bort.cards")


def _modules_after(code: str) -> dict:
    probe = f"import json, sys\n{code}\nprint(json.dumps({{'modules': sorted(sys.modules)}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_hf_bort_imports_no_trainer_datasets_or_accelerate():
    loaded = set(_modules_after("import hf_bort")["modules"])
    assert not [name for name in HEAVY if name in loaded]
    assert not [name for name in STAGES if name in loaded]
    # accelerate: only what transformers' PreTrainedModel (needed to register the Bort classes) imports by itself.
    baseline = set(_modules_after("import transformers.modeling_utils")["modules"])
    assert ("accelerate" in loaded) <= ("accelerate" in baseline)
    assert not {m for m in loaded if m.startswith("accelerate")} - baseline


def test_registration_still_happens_at_import():
    code = (
        "import hf_bort\n"
        "from transformers import AutoConfig, AutoModel\n"
        "config = AutoConfig.for_model('bort', vocab_size=11, hidden_size=8, num_hidden_layers=1,"
        " num_attention_heads=2, intermediate_size=8)\n"
        "assert type(AutoModel.from_config(config)).__name__ == 'BortModel'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_names_resolve():
    import hf_bort

    for name in hf_bort.__all__:
        assert getattr(hf_bort, name) is not None, name
    assert set(hf_bort.__all__) <= set(dir(hf_bort))
    assert hf_bort.exporters.export_onnx is hf_bort.export_onnx
    assert hf_bort.measure.time_calls is not None
    try:
        hf_bort.Nope  # noqa: B018
    except AttributeError as error:
        assert "no attribute 'Nope'" in str(error)
    else:
        raise AssertionError("hf_bort.Nope should raise AttributeError")


def test_compress_is_the_function_whichever_import_comes_first():
    """`hf_bort.compress` names both a sub-package and the function it exports: the function wins, as before the
    lazy import (a test importing `hf_bort.compress.pipeline` first got the module and 'module is not callable')."""
    code = (
        "import hf_bort.compress.pipeline\n"
        "from hf_bort import compress\n"
        "import hf_bort\n"
        "assert callable(compress) and compress.__name__ == 'compress', compress\n"
        "assert hf_bort.compress is compress\n"
        "from hf_bort.compress import pipeline, CompressionConfig\n"
        "assert pipeline.compress is compress\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "from hf_bort import compress\nassert callable(compress) and compress.__name__ == 'compress', compress\n"
    subprocess.run([sys.executable, "-c", code], check=True)
