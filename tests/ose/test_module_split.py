"""`ose/search.py` and `ose/extract.py` were split into modules with one job each; their names stay importable."""

from __future__ import annotations

import importlib
from pathlib import Path

import hf_bort.ose
from hf_bort.ose import importance, search_batches, search_budget, search_prepare


def test_importance_stays_importable_from_extract_and_search():
    from hf_bort.ose.extract import Importance, compute_importance
    from hf_bort.ose.search import Importance as SearchImportance

    assert (Importance, compute_importance) == (importance.Importance, importance.compute_importance)
    assert SearchImportance is importance.Importance
    assert (hf_bort.ose.Importance, hf_bort.ose.compute_importance) == (Importance, compute_importance)


def test_search_keeps_its_public_names_and_methods():
    search = importlib.import_module("hf_bort.ose.search")
    for name in search.__all__:
        assert getattr(search, name) is getattr(hf_bort.ose, name)
    assert search.LOCK_NAME == ".hf_bort.lock"
    owners = {
        "_prepare": search_prepare.SearchPreparation,
        "_run_id": search_prepare.SearchPreparation,
        "_build_batches": search_batches.SearchBatches,
        "_mask": search_batches.SearchBatches,
        "candidates_within_budget": search_budget.SearchBudget,
        "source_costs": search_budget.SearchBudget,
    }
    for method, owner in owners.items():
        assert getattr(search.OSESearch, method) is owner.__dict__[method]
    for method in ("run", "extract", "build_student", "evaluate_candidate", "lock"):
        assert method in search.OSESearch.__dict__


def test_every_ose_module_is_under_500_lines():
    folder = Path(hf_bort.ose.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    assert {"search.py", "extract.py", "importance.py"} <= set(sizes)
    assert {name: size for name, size in sizes.items() if size > 500} == {}
