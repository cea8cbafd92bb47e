"""Issue 22 item 3: ONNX where sentence-transformers (backend="onnx") and optimum's ORTModel look for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("optimum.onnxruntime", reason="the onnx extra is not installed on this stack")
pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")

from sentence_transformers import SentenceTransformer  # noqa: E402

from hf_bort import convert_to_bort  # noqa: E402
from hf_bort.exporters import export_onnx  # noqa: E402
from tiny_sentence_transformers import SENTENCES, tiny_sentence_transformer  # noqa: E402


@pytest.fixture(scope="module", params=["", "0_Transformer"], ids=["root-encoder", "sub-folder-encoder"])
def bort_st_folder(request, tmp_path_factory):
    """A Bort sentence-transformers folder (converted from a tiny BERT one), encoder at the root or in a sub-folder."""
    root = tmp_path_factory.mktemp("st")
    source = tiny_sentence_transformer(root / "st", dense=8, subfolder=request.param)
    convert_to_bort(source, root / "bort")
    return root / "bort", request.param


def test_export_of_a_sentence_transformers_folder_loads_with_backend_onnx(bort_st_folder, tmp_path):
    folder, subfolder = bort_st_folder
    result = export_onnx(folder, tmp_path / "exported")
    onnx_file = tmp_path / "exported" / subfolder / "onnx" / "model.onnx"
    assert result.onnx_path == str(onnx_file) and onnx_file.is_file()
    assert not (folder / subfolder / "onnx").exists()  # the source folder is not touched
    expected = SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    onnx = SentenceTransformer(str(tmp_path / "exported"), device="cpu", backend="onnx")
    assert onnx.encode(SENTENCES, convert_to_tensor=True).shape == expected.shape == (len(SENTENCES), 8)
    assert torch.allclose(onnx.encode(SENTENCES, convert_to_tensor=True), expected, atol=1e-5)


def test_export_command_on_a_sentence_transformers_folder(bort_st_folder, tmp_path, capsys):
    from hf_bort.cli import main

    folder, subfolder = bort_st_folder
    if subfolder:
        pytest.skip("one layout is enough for the command")
    assert main(["export", str(folder), str(tmp_path / "out"), "--no-optimize"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx_path"].endswith("onnx/model.onnx")
    assert main(["export", str(folder), str(tmp_path / "out")]) == 2  # the overwrite rule holds here too
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="task 'feature-extraction'"):
        export_onnx(folder, tmp_path / "cls", task="text-classification")


def test_the_onnx_folder_loads_without_hf_bort_cleanly(tmp_path):
    """The line the ONNX card shows for loading without hf_bort: no 'not a valid Python identifier' warnings."""
    from hf_bort import BortConfig, BortForSequenceClassification
    from tiny_tokenizers import bert_tokenizer

    torch.manual_seed(0)
    config = BortConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    model = BortForSequenceClassification(config).eval()
    tokenizer = bert_tokenizer(tmp_path / "tok")
    export_onnx(model, tmp_path / "cls", tokenizer=tokenizer)
    inputs = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).logits
    script = textwrap.dedent(
        """
        import json, sys
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoConfig, AutoTokenizer
        path = sys.argv[1]
        model = ORTModelForSequenceClassification.from_pretrained(
            path, config=AutoConfig.from_pretrained(path, trust_remote_code=True)
        )
        inputs = AutoTokenizer.from_pretrained(path)(json.loads(sys.argv[2]), padding=True, return_tensors="pt")
        print(json.dumps({"logits": model(**inputs).logits.tolist(), "labels": model.config.id2label,
                          "hf_bort": "hf_bort" in sys.modules}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cls"), json.dumps(SENTENCES)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not a valid Python identifier" not in done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["hf_bort"] is False and record["labels"] == {"0": "negative", "1": "positive"}
    assert torch.allclose(torch.tensor(record["logits"]), expected, atol=1e-4)
    card = (tmp_path / "cls" / "README.md").read_text()
    path = (tmp_path / "cls").as_posix()  # the snippets load the folder itself (was the bare name "cls")
    assert f'config = AutoConfig.from_pretrained("{path}", trust_remote_code=True)' in card
    assert f'ORTModelForSequenceClassification.from_pretrained("{path}", config=config)' in card
