from __future__ import annotations

import pytest
from transformers import BertConfig

from hf_bort.ose import Candidate, SearchSpace


def test_paper_grid_has_300_points_and_counts_the_dropped():
    space = SearchSpace.paper_bert()
    assert len(space) == 300
    assert dict(space.dropped) == {"hidden_size % num_heads != 0": 60}
    assert all(c.hidden_size % c.num_heads == 0 and c.head_size == c.hidden_size // c.num_heads for c in space)


def test_from_source_scales_the_paper_grid_to_minilm_shape():
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    space = SearchSpace.from_source(config)
    assert space.num_layers == (1, 2, 3, 4, 5, 6)
    assert space.num_heads == (3, 6, 9, 12)
    assert space.hidden_sizes == (192, 288, 384)
    assert space.intermediate_sizes == (128, 256, 384, 512, 1536)
    assert space.head_size == 32 and len(space) == 360 and not space.dropped


def test_user_grid_drops_points_larger_than_the_source():
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    space = SearchSpace.from_source(config, num_layers=(1, 2, 3), intermediate_sizes=(8, 40))
    assert space.dropped == {"num_layers > source's 2": 4 * 3 * 2, "intermediate_size > source's 37": 2 * 4 * 3}
    assert {c.num_layers for c in space} == {1, 2} and {c.intermediate_size for c in space} == {8}


def test_empty_space_is_an_error_before_any_work():
    with pytest.raises(ValueError, match="search space is empty.*hidden_size % num_heads"):
        SearchSpace(num_layers=(2,), num_heads=(3,), hidden_sizes=(32,), intermediate_sizes=(8,))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_layers", (), "`num_layers` must be a non-empty"),
        ("num_heads", (0, 2), "`num_heads` must contain positive integers"),
        ("hidden_sizes", (32.5,), "`hidden_sizes` must contain positive integers"),
        ("head_size", -1, "`head_size` must be a positive integer"),
    ],
)
def test_bad_fields_are_named(field, value, message):
    kwargs = dict(num_layers=(1,), num_heads=(2,), hidden_sizes=(32,), intermediate_sizes=(8,))
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_candidate_key_round_trip():
    candidate = Candidate(4, 8, 768, 1024, 64)
    assert candidate.key == "D4-A8-H768-I1024-d64"
    assert Candidate.from_key(candidate.key) == candidate
    assert Candidate.from_dict(candidate.to_dict()) == candidate
    with pytest.raises(ValueError, match="`key`"):
        Candidate.from_key("D4-A8")
