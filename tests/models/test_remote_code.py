"""A saved Bort checkpoint loads in a process that never imports hf_bort, through transformers' remote code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

from hf_bort import BortConfig, BortForSequenceClassification

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoModel, AutoModelForSequenceClassification
    path = sys.argv[1]
    try:
        AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=False)
    except ValueError as error:
        assert "trust_remote_code=True" in str(error), error
    else:
        raise SystemExit("loading without trust_remote_code should have failed")
    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(path, trust_remote_code=True)
    assert "hf_bort" not in sys.modules, "hf_bort was imported"
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(base).__name__ == "BortModel"
    inputs = torch.load(path + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, path + "/remote_logits.pt")
    """
)


def test_trust_remote_code_round_trip_without_hf_bort(tmp_path, batch):
    torch.manual_seed(0)
    config = BortConfig(
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=[3, 1],
        attention_head_size=8,
        intermediate_size=[16, 4],
        max_position_embeddings=32,
        num_labels=3,
    )
    model = BortForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    code = {"modeling_bort.py", "modeling_bort_attention.py", "modeling_bort_layers.py", "configuration_bort.py"}
    code |= {"configuration_bort_checks.py"}
    assert code <= {path.name for path in tmp_path.glob("*.py")}  # the modules modeling_bort.py imports travel too
    torch.save(batch, tmp_path / "inputs.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), expected)


MLM_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoModelForMaskedLM
    path = sys.argv[1]
    model = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True).eval()
    assert "hf_bort" not in sys.modules, "hf_bort was imported"
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    inputs = torch.load(path + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, path + "/remote_logits.pt")
    """
)


def test_trust_remote_code_masked_lm_keeps_a_nonzero_bias(tmp_path, batch):
    from hf_bort import BortForMaskedLM

    torch.manual_seed(0)
    config = BortConfig(
        vocab_size=99, hidden_size=24, num_hidden_layers=1, num_attention_heads=3, intermediate_size=16
    )
    model = BortForMaskedLM(config).eval()
    with torch.no_grad():
        model.cls.predictions.bias.copy_(torch.linspace(-3.0, 3.0, config.vocab_size))
    model.save_pretrained(tmp_path)
    torch.save(batch, tmp_path / "inputs.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", MLM_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), expected)


def test_with_hf_bort_imported_the_shipped_code_is_not_run(tmp_path):
    """README: `import hf_bort` first loads a checkpoint with the installed code, without trust_remote_code."""
    from transformers import AutoModelForSequenceClassification

    config = BortConfig(vocab_size=99, hidden_size=24, num_hidden_layers=1, num_attention_heads=3, num_labels=2)
    BortForSequenceClassification(config).save_pretrained(tmp_path / "ckpt")
    assert "AutoModelForSequenceClassification" in model_config_auto_map(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "modeling_bort.py").write_text("raise RuntimeError('shipped code was run')\n")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt")
    assert type(model) is BortForSequenceClassification


def model_config_auto_map(folder) -> dict:
    import json

    return json.loads((folder / "config.json").read_text()).get("auto_map", {})


MODELING_ONLY_SCRIPT = textwrap.dedent(
    """
    import sys
    from transformers.dynamic_module_utils import get_class_from_dynamic_module
    model_class = get_class_from_dynamic_module("modeling_bort.BortModel", sys.argv[1])
    assert "hf_bort" not in sys.modules, "hf_bort was imported"
    assert model_class.__name__ == "BortModel" and model_class.config_class.__name__ == "BortConfig"
    """
)


def test_the_modeling_code_loads_before_the_configuration_code(tmp_path):
    """The modeling file alone (no AutoConfig call first) brings every module it needs: transformers 4.x copies only
    a local file's direct relative imports, so the split modules must all be imported by modeling_bort.py itself."""
    from hf_bort import BortModel

    config = BortConfig(vocab_size=99, hidden_size=24, num_hidden_layers=1, num_attention_heads=3)
    BortModel(config).save_pretrained(tmp_path / "ckpt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", MODELING_ONLY_SCRIPT, str(tmp_path / "ckpt")],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]


CONFIG_ONLY_SCRIPT = textwrap.dedent(
    """
    import sys
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)
    assert "hf_bort" not in sys.modules, "hf_bort was imported"
    assert type(config).__name__ == "BortConfig" and config.layer_num_attention_heads == [3, 1]
    try:
        type(config)(num_hidden_layers=1, num_attention_heads=0)
    except ValueError as error:  # the shipped checks run
        assert "num_attention_heads" in str(error), error
    else:
        raise SystemExit("the shipped configuration accepted 0 heads")
    """
)


def test_a_saved_configuration_ships_its_checks(tmp_path):
    """A folder with only `config.json` (an ONNX export's) carries configuration_bort.py and the module it imports."""
    config = BortConfig(
        vocab_size=99, hidden_size=24, num_hidden_layers=2, num_attention_heads=[3, 1], attention_head_size=8
    )
    config.save_pretrained(tmp_path / "config")
    saved = {path.name for path in (tmp_path / "config").iterdir()}
    assert {"configuration_bort.py", "configuration_bort_checks.py"} <= saved
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", CONFIG_ONLY_SCRIPT, str(tmp_path / "config")],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
