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
    assert (tmp_path / "modeling_bort.py").is_file() and (tmp_path / "configuration_bort.py").is_file()
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
