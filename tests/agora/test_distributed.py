from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_cpu_processes_agree(tmp_path):
    script = Path(__file__).with_name("ddp_agora.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)]
    subprocess.run(command, check=True, env=env, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 2
    assert ranks[0]["train_size"] == ranks[1]["train_size"] > 64
    assert ranks[0]["weight_sum"] == pytest.approx(ranks[1]["weight_sum"], rel=1e-6)
    # 64 rows / (8 per process * 2 processes) = 4 batches, 2 epochs, accumulation 2 -> 4 steps per round, 3 rounds.
    assert ranks[0]["global_step"] == 12
    # the budget is per run: rank 0 labels each round's samples and broadcasts; rank 1 only probed one point
    assert ranks[1]["labelled"] == [1] and ranks[0]["labelled"][0] == 1
    assert sum(ranks[0]["labelled"][1:]) == ranks[0]["labeller_calls"] == ranks[1]["labeller_calls"] > 0
