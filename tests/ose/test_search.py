from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, ConvBertConfig, ConvBertModel

from hf_bort.ose import Candidate, OSESearch, SearchSpace, covers, dominates, pareto_front
from hf_bort.ose import search as search_module
from hf_bort.ose import search_budget as search_budget_module
from hf_bort.ose import store as store_module
from tiny_shapes import TINY_SHAPE

SMALL = dict(num_layers=(1, 2), num_heads=(2, 4), hidden_sizes=(24, 32), intermediate_sizes=(8,))


def _search(source, tok, texts, out, **kwargs):
    space = kwargs.pop("space", None) or SearchSpace.from_source(source, **SMALL)
    defaults = dict(epsilon=0.5, interval_size=2, max_steps=4, batch_size=4, num_eval_batches=2, show_progress=False)
    return OSESearch(source, space, tokenizer=tok, text_dataset=texts, output_dir=out, **{**defaults, **kwargs})


def test_pareto_helpers():
    points = [(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]
    assert pareto_front(points) == [0, 1, 3, 4]
    assert dominates((1, 1), (1, 2)) and not dominates((1, 2), (1, 2))
    assert dominates((1.1, 1), (1, 1), factor=1.1) and not dominates((1.2, 1), (1, 1), factor=1.1)
    assert covers([(1, 5), (2.1, 2)], [(1, 5), (2, 2)], 0.1) and not covers([(1, 5)], [(2, 2)], 0.1)


def test_run_stores_prunes_and_reports(tmp_path, tiny_bert, bert_tok, texts):
    search = _search(tiny_bert, bert_tok, texts, tmp_path / "run")
    assert search.rungs == [2, 4]
    result = search.run()
    lines = (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(result.evaluations) == 8 + len(result.final)
    assert {"candidate", "params", "multiply_adds", "latency_ms", "error", "steps", "seed", "wall_time"} <= set(
        records[0]
    )
    assert result.survivors_per_rung[0] == 8
    # The survivors are exactly the rung-2 candidates that no other one (1+ε)-box-dominates with a lower error
    # (the rule, written out here independently of `prune`), and the rule did drop some.
    rung = {r.candidate.key: r for r in result.evaluations if r.steps == 2}
    assert len(rung) == 8

    def box(r):
        return tuple(math.floor(math.log(value) / math.log1p(0.5)) for value in (r.params, r.multiply_adds))

    def rank(r):
        return (r.error, r.params, r.multiply_adds, r.candidate.key)

    expected = {
        key
        for key, r in rung.items()
        if not any(box(o)[0] <= box(r)[0] and box(o)[1] <= box(r)[1] and rank(o) < rank(r) for o in rung.values())
    }
    assert {r.candidate.key for r in result.final} == expected and 1 <= len(expected) < 8
    # The front is exactly the non-dominated set of the fully trained candidates in (params, MACs, ê) …
    front = result.pareto_front()
    assert all(r.steps == 4 for r in front)

    def objectives(r):
        return (r.params, r.multiply_adds, r.error)

    def dominated(r):
        return any(
            all(a <= b for a, b in zip(objectives(o), objectives(r), strict=True)) and objectives(o) != objectives(r)
            for o in result.final
        )

    assert {r.candidate.key for r in front} == {r.candidate.key for r in result.final if not dominated(r)}
    # … and best() is the front point with the lowest documented W-coefficient (p/p_T + c/c_T + ê/median ê).
    median = sorted(r.error for r in front)[len(front) // 2]

    def w(r):
        return r.params / result.source_params + r.multiply_adds / result.source_multiply_adds + r.error / median

    assert result.best() == min(front, key=lambda r: (w(r), r.candidate))
    cheapest = min(front, key=lambda r: r.multiply_adds)
    budget = cheapest.multiply_adds / result.source_multiply_adds
    assert result.best(max_cost_ratio=budget) == cheapest  # the only front point within that budget
    assert "| candidate |" in result.to_markdown() and front[0].candidate.key in result.to_markdown()
    assert result.plot(tmp_path / "front.png").stat().st_size > 1000
    source_error, _, _ = search.evaluate_candidate(Candidate(2, 4, 32, 37, 8), 0)  # the source itself, untrained
    assert source_error < 1e-10 < search.evaluate_candidate(Candidate(1, 2, 24, 8, 8), 0)[0]
    student = search.extract(result.best(), tmp_path / "student")
    assert student.config.hidden_size == result.best().candidate.hidden_size
    assert (tmp_path / "student" / "config.json").is_file()


def test_resume_after_a_crash_skips_finished_candidates_and_ignores_a_torn_line(
    tmp_path, tiny_bert, bert_tok, texts, monkeypatch
):
    first = _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    store = tmp_path / "run" / "candidates.jsonl"
    lines = store.read_text().splitlines(keepends=True)
    store.write_text("".join(lines[:-2]) + lines[-2][:25])  # lost the last record, tore the one before
    calls = []
    real = OSESearch.evaluate_candidate

    def counting(self, candidate, steps):
        calls.append((candidate.key, steps))
        return real(self, candidate, steps)

    monkeypatch.setattr(OSESearch, "evaluate_candidate", counting)
    with warnings.catch_warnings():
        second = _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    assert len(calls) == 2
    assert [(r.candidate, r.error) for r in second.final] == [(r.candidate, r.error) for r in first.final]
    assert all(json.loads(line) for line in store.read_text().splitlines())
    calls.clear()
    _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    assert calls == []


def test_same_seed_same_results_other_seed_other_data(tmp_path, tiny_bert, bert_tok, texts):
    a = _search(tiny_bert, bert_tok, texts, tmp_path / "a").run()
    b = _search(tiny_bert, bert_tok, texts, tmp_path / "b").run()
    assert [(r.candidate, r.error) for r in a.evaluations] == [(r.candidate, r.error) for r in b.evaluations]
    c = _search(tiny_bert, bert_tok, texts, tmp_path / "c", seed=1, prune=False).run()
    assert c.rungs == [4] and len(c.final) == 8
    assert [r.error for r in c.final] != [r.error for r in a.final]


def test_rank_takes_its_shard(tmp_path, tiny_bert, bert_tok, texts, monkeypatch):
    monkeypatch.setattr(search_module, "rank_world", lambda: (1, 2))
    monkeypatch.setattr(search_budget_module, "rank_world", lambda: (1, 2))  # candidates_within_budget's
    monkeypatch.setattr(store_module, "rank_world", lambda: (1, 2))

    def fake_gather(out, obj):  # the other rank did nothing: only this rank's shard comes back
        out[:] = [[], obj]

    def fake_broadcast(box, src=0):  # rank 0 read the store (empty: a new run) and sent it to this rank
        assert src == 0 and box == [None]  # only rank 0 reads the store
        box[0] = {}

    monkeypatch.setattr(torch.distributed, "all_gather_object", fake_gather)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", fake_broadcast)
    search = _search(tiny_bert, bert_tok, texts, tmp_path / "run", prune=False)
    with pytest.raises(KeyError):  # the other half is missing: the search cannot finish without rank 0
        search.run()
    keys = [json.loads(line)["key"] for line in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()]
    assert keys == [c.key for c in search.space.candidates()[1::2]]


def test_mlm_teacher_uses_kl_and_unsupported_source_is_refused_unless_asked(tmp_path, bert_tok, texts, caplog):
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**TINY_SHAPE)).eval()
    search = _search(mlm, bert_tok, texts, tmp_path / "mlm", prune=False, max_steps=2)
    result = search.run()
    assert search.objective == "mlm" and all(r.error > 0 for r in result.final)
    convbert = ConvBertModel(
        ConvBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    ).eval()
    space = SearchSpace.from_source(
        convbert, num_layers=(1,), num_heads=(2,), hidden_sizes=(32,), intermediate_sizes=(8,)
    )
    with pytest.raises(ValueError, match="No weight mapping from 'convbert'.*allow_random_init=True"):
        _search(convbert, bert_tok, texts, tmp_path / "refused", space=space, prune=False, max_steps=2).run()
    assert not (tmp_path / "refused" / "candidates.jsonl").exists()
    with caplog.at_level("WARNING"):
        result = _search(
            convbert,
            bert_tok,
            texts,
            tmp_path / "convbert",
            space=space,
            prune=False,
            max_steps=2,
            allow_random_init=True,
        ).run()
    assert len(result.final) == 1
    assert sum("starts from random weights" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(epsilon=0.0), ValueError, "`epsilon` must be a number in"),
        (dict(interval_size=0), ValueError, "`interval_size` must be a positive integer"),
        (dict(cost="energy"), ValueError, "`cost` must be one of"),
        (dict(text_dataset=None), ValueError, "`text_dataset` is required"),
        (dict(text_dataset=["a film"] * 5), ValueError, "`text_dataset` has 5 texts"),
        (dict(text_dataset=["ok"] * 20 + [""]), ValueError, "entry 20"),
        (dict(space="paper"), TypeError, "`space` must be a SearchSpace"),
        (dict(importance_method="oracle"), ValueError, "`importance_method`"),
    ],
)
def test_bad_inputs_fail_before_any_work(tmp_path, tiny_bert, bert_tok, texts, kwargs, error, message):
    kwargs = {"text_dataset": texts, **kwargs}
    space = kwargs.pop("space", SearchSpace.from_source(tiny_bert, **SMALL))
    data = kwargs.pop("text_dataset")
    with pytest.raises(error, match=message):
        OSESearch(tiny_bert, space, tokenizer=bert_tok, text_dataset=data, output_dir=tmp_path, **kwargs)
    assert not (tmp_path / "candidates.jsonl").exists()


def test_dataset_column_checked(tmp_path, tiny_bert, bert_tok, texts):
    from datasets import Dataset

    with pytest.raises(ValueError, match="`text_column` 'sentence'"):
        OSESearch(
            tiny_bert, tokenizer=bert_tok, text_dataset=Dataset.from_dict({"text": texts}), text_column="sentence"
        )


def test_head_size_mismatch_is_reported(tmp_path, tiny_bert, bert_tok, texts):
    space = SearchSpace(num_layers=(1,), num_heads=(2,), hidden_sizes=(32,), intermediate_sizes=(8,))  # d = 16
    with pytest.raises(ValueError, match="`space` has 1 candidates .*head width 8"):
        _search(tiny_bert, bert_tok, texts, tmp_path, space=space).run()


@pytest.mark.parametrize(
    "bad_line",
    [
        '["a", "list"]',
        '{"run_id": "RUN", "key": "x"}',
        '{"run_id": "RUN", "candidate": {"num_layers": 1}, "params": 1}',
        "FIELD_NAN",
        "FIELD_ZERO_PARAMS",
        "NOT_UTF8",  # used to stop every rerun with "'utf-8' codec can't decode byte", naming no file or line
    ],
)
def test_a_bad_line_in_the_store_is_skipped_with_its_file_and_line(
    tmp_path, tiny_bert, bert_tok, texts, bad_line, caplog
):
    first = _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    store = tmp_path / "run" / "candidates.jsonl"
    lines = store.read_text().splitlines()
    record = json.loads(lines[0])
    if bad_line == "FIELD_NAN":
        bad_line = json.dumps({**record, "error": float("nan")})
    elif bad_line == "FIELD_ZERO_PARAMS":
        bad_line = json.dumps({**record, "params": 0})
    elif bad_line != "NOT_UTF8":
        bad_line = bad_line.replace("RUN", record["run_id"])
    first_line = lines[0].encode().replace(b'"run_id"', b'"run_\xff"') if bad_line == "NOT_UTF8" else bad_line.encode()
    store.write_bytes(b"\n".join([first_line, *(line.encode() for line in lines[1:])]) + b"\n")  # first one bad
    with caplog.at_level("WARNING"):
        second = _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    assert any("line 1 of" in r.getMessage() and "candidates.jsonl" in r.getMessage() for r in caplog.records)
    if bad_line == "NOT_UTF8":
        assert any("not valid UTF-8" in r.getMessage() for r in caplog.records)
        assert len(store_module.load_results(tmp_path / "run")) == len(store.read_bytes().splitlines()) - 1
    assert [(r.candidate, r.error) for r in second.final] == [(r.candidate, r.error) for r in first.final]


def test_cli_search_refuses_a_bad_budget_before_searching(tmp_path, tiny_bert, capsys):
    from hf_bort.cli import main

    tiny_bert.save_pretrained(tmp_path / "src")
    code = main(["search", str(tmp_path / "src"), "--output-dir", str(tmp_path / "out"), "--max-cost-ratio", "-3"])
    assert code == 2 and "--max-cost-ratio must be a number in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "out" / "candidates.jsonl").exists()


def test_a_second_search_in_a_held_folder_fails_at_once_naming_the_holder(
    tmp_path, tiny_bert, bert_tok, texts, held_lock, monkeypatch
):
    from hf_bort import InUseError

    holder = held_lock(tmp_path / "run" / search_module.LOCK_NAME)
    monkeypatch.setattr(OSESearch, "_prepare", lambda self: pytest.fail("no work may start"))
    with pytest.raises(InUseError, match=rf"output folder .*run' is in use by another process \(pid {holder.pid} "):
        _search(tiny_bert, bert_tok, texts, tmp_path / "run").run()
    assert not (tmp_path / "run" / "candidates.jsonl").exists()


def test_a_shared_latency_cache_in_use_is_refused_by_the_search_and_by_the_cache(
    tmp_path, tiny_bert, bert_tok, texts, held_lock
):
    from hf_bort import InUseError, LatencyCache

    shared = tmp_path / "shared" / "latency.json"
    holder = held_lock(tmp_path / "shared" / "latency.json.lock")
    search = _search(
        tiny_bert, bert_tok, texts, tmp_path / "run", cost="latency_ms", latency_cache=shared, sequence_length=16
    )
    with pytest.raises(InUseError, match=rf"latency cache .* in use by another process \(pid {holder.pid} "):
        search.run()
    config = search.base_config
    with pytest.raises(InUseError, match="latency cache"):
        LatencyCache(shared, repeats=1, warmup=0).measure(config, sequence_length=8)
    holder.release()
    assert LatencyCache(shared, repeats=1, warmup=0).measure(config, sequence_length=8) > 0
    assert shared.is_file()
