from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, out: str, shape: dict, tok_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from transformers import BertConfig, BertModel

    from hf_bort.ose import OSESearch, SearchSpace
    from tiny_tokenizers import WORDS, bert_tokenizer

    torch.manual_seed(0)
    source = BertModel(BertConfig(**shape)).eval()
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(80)]
    space = SearchSpace.from_source(
        source, num_layers=(1, 2), num_heads=(2, 4), hidden_sizes=(24, 32), intermediate_sizes=(8,)
    )
    search = OSESearch(
        source,
        space,
        tokenizer=bert_tokenizer(Path(tok_dir)),
        text_dataset=texts,
        output_dir=out,
        epsilon=0.5,
        interval_size=2,
        max_steps=4,
        batch_size=4,
        num_eval_batches=2,
        show_progress=False,
    )
    result = search.run()  # joins the gloo group from the environment
    Path(out, f"final{rank}.json").write_text(json.dumps([[r.candidate.key, r.error] for r in result.final]))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_cpu_processes_share_the_candidates(tmp_path):
    from tiny_shapes import TINY_SHAPE

    port = random.Random().randint(20000, 40000)
    mp.spawn(_worker, args=(2, port, str(tmp_path / "dist"), TINY_SHAPE, str(tmp_path / "tok")), nprocs=2)
    final0 = json.loads((tmp_path / "dist" / "final0.json").read_text())
    assert final0 == json.loads((tmp_path / "dist" / "final1.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "dist" / "candidates.jsonl").read_text().splitlines()]
    assert len(records) == len({(r["key"], r["steps"]) for r in records})  # no candidate evaluated twice
    # the same search in one process gives the same front
    mp.spawn(_worker, args=(1, port + 1, str(tmp_path / "single"), TINY_SHAPE, str(tmp_path / "tok")), nprocs=1)
    assert json.loads((tmp_path / "single" / "final0.json").read_text()) == final0


@pytest.mark.slow
def test_torchrun_gives_two_cpu_ranks_writes_once_and_synchronises_the_projection(tmp_path, bert_tok, texts):
    """The documented launch: `torchrun --nproc_per_node 2` (gloo on CPU) around the CLI's `main`."""
    import subprocess

    from transformers import BertConfig, BertModel

    from tiny_shapes import TINY_SHAPE

    torch.manual_seed(0)
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(tmp_path / "source")
    bert_tok.save_pretrained(tmp_path / "source")
    small = BertConfig(**{**TINY_SHAPE, "hidden_size": 24, "num_attention_heads": 2, "num_hidden_layers": 1})
    BertModel(small).save_pretrained(tmp_path / "student")
    bert_tok.save_pretrained(tmp_path / "student")
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    script = Path(__file__).with_name("ddp_ose.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)]
    subprocess.run(command, check=True, env=env, timeout=900)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["codes"] for r in ranks] == [[0, 0], [0, 0]]
    outputs = {"front.md", "front.png", "best.json", "model:distilled"}
    assert outputs <= set(ranks[0]["writes"])
    assert not outputs & set(ranks[1]["writes"])  # rank 1 wrote none of the outputs
    assert (tmp_path / "distilled" / "config.json").is_file()
    # each rank trained on its own shard: equal weights mean the gradients were averaged, projection included
    assert ranks[0]["student"] == pytest.approx(ranks[1]["student"], rel=1e-6)
    assert ranks[0]["projection"] == pytest.approx(ranks[1]["projection"], rel=1e-6)
