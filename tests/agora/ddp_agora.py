"""Run by test_distributed.py under torch.distributed.run (2 CPU processes): Agora on the torus toy with DDP."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch

from hf_bort.agora import AgoraConfig, AgoraTrainer
from tiny_torus import ToyConfig, ToyMLP, torus_dataset, torus_labeller, torus_points

generator = torch.Generator().manual_seed(0)
train = torus_dataset(torus_points(64, generator, max_angle=2 * math.pi / 3))
dev = torus_dataset(torus_points(60, generator))
torch.manual_seed(0)
model = ToyMLP(ToyConfig())
args = AgoraConfig(
    sys.argv[1], agora_rounds=2, agora_samples_per_error=2, per_device_train_batch_size=8, num_train_epochs=2,
    gradient_accumulation_steps=2, learning_rate=1e-2, use_cpu=True, save_strategy="no", report_to="none",
    disable_tqdm=True, ddp_backend="gloo",
)  # fmt: skip
labelled: list[int] = []  # points this process's labeller was asked for


def counting_labeller(points):
    labelled.append(len(points))
    return torus_labeller(points)


trainer = AgoraTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev, labeller=counting_labeller)
trainer.train()
rank = int(os.environ.get("RANK", 0))
result = {
    "world_size": args.world_size,
    "global_step": trainer.state.global_step,
    "history": [(h.round, h.dev_errors, h.accepted) for h in trainer.agora_history],
    "train_size": len(trainer.train_dataset),
    "weight_sum": float(sum(p.double().sum() for p in model.parameters())),
    "labelled": labelled,
    "labeller_calls": trainer.agora_state.labeller_calls,
}
Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(result))

if torch.distributed.is_initialized():  # a gloo group left to interpreter exit can abort a rank
    torch.distributed.barrier()  # both ranks have written their results before the group goes
    torch.distributed.destroy_process_group()
# Skip the interpreter's teardown: once (CI, after both ranks had written their results and destroyed the group) a
# rank still aborted there ("terminate called without an active exception", SIGABRT) from a native thread's
# destructor. The results are on disk; the test compares them.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
