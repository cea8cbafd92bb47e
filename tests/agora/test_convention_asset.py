"""The second benchmark task's loader (`hf_bort.assets.load_convention_sentences`), fed from a prepared cache."""

from __future__ import annotations

import csv
import io

import pytest

from hf_bort import assets
from hf_bort._fetch import PinnedFile, sha256_of


def test_convention_sentences_split_dedup_label_and_refuse_a_tampered_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path))
    monkeypatch.setattr(assets, "fetch_pinned", lambda *a, **k: pytest.fail("must not download"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["party", "speaker", "text"])
    writer.writeheader()
    for i in range(20):
        party = "democrat" if i % 2 else "republican"
        text = f"We will build {i} new roads across this great land. Thank you.\n"
        text += f"And we will win {i} times again, friends!"
        writer.writerow({"party": party, "speaker": "S", "text": text})
    writer.writerow({"party": "democrat", "speaker": "S", "text": "We will build 3 new roads across this great land."})
    path = tmp_path / "political_data.csv"
    path.write_text(buffer.getvalue())
    monkeypatch.setattr(assets, "_CONVENTION_CACHED", PinnedFile(path.name, sha256_of(path)))
    monkeypatch.setattr(assets, "CONVENTION_SPLIT_SIZES", {"test": 10, "validation": 5})
    sentences = assets.convention_sentences()
    assert len(sentences) == 40  # two sentences of >= 8 words per speech; "Thank you." and the duplicate dropped
    assert {s["label"] for s in sentences if "roads" in s["text"] and " 1 " in s["text"]} == {0}
    splits = assets.load_convention_sentences(seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 25, "validation": 5, "test": 10}
    assert splits["train"].features["label"].names == ["democrat", "republican"]
    assert assets.load_convention_sentences(seed=1)["test"]["text"] == splits["test"]["text"]
    path.write_text(buffer.getvalue() + "tampered")
    with pytest.raises(ValueError, match="expected the pinned"):
        assets.convention_sentences()
