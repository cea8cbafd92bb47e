"""
Run by test_distributed.py under `torch.distributed.run --nproc_per_node 2` (two gloo CPU ranks): `hf-bort search`
and `hf-bort distill` through the CLI's `main`, recording every file each rank writes, then a `DistillationTrainer`
whose student is narrower than its teacher (a learned projection), recording the weights each rank ends with.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import torch

out = pathlib.Path(sys.argv[1])
rank = int(os.environ["RANK"])
writes: list[str] = []

real_write = pathlib.Path.write_text


def spy_write(self, *args, **kwargs):
    writes.append(self.name)
    return real_write(self, *args, **kwargs)


pathlib.Path.write_text = spy_write

from transformers import BertConfig, BertModel, DataCollatorWithPadding, PreTrainedModel  # noqa: E402

from hf_bort.cli import main  # noqa: E402
from hf_bort.ose import DistillationConfig, DistillationTrainer  # noqa: E402
from hf_bort.ose.results import SearchResult  # noqa: E402

real_plot, real_save = SearchResult.plot, PreTrainedModel.save_pretrained


def spy_plot(self, path, *args, **kwargs):
    writes.append(pathlib.Path(path).name)
    return real_plot(self, path, *args, **kwargs)


def spy_save(self, directory, *args, **kwargs):
    writes.append(f"model:{pathlib.Path(directory).name}")
    return real_save(self, directory, *args, **kwargs)


SearchResult.plot, PreTrainedModel.save_pretrained = spy_plot, spy_save

from hf_bort.ose.store import CandidateStore  # noqa: E402

real_load = CandidateStore.load


def late_load(self, *args, **kwargs):
    # a slow rank reads the store after rank 0 has appended its first results: every rank must still split the
    # interval the same way (the search reads the store once, on rank 0, and broadcasts it)
    if rank != 0:
        import time

        time.sleep(4)
    return real_load(self, *args, **kwargs)


CandidateStore.load = late_load
torch.set_num_threads(1)
source, texts = out / "source", out / "texts.txt"
grid = ["--layers", "1,2", "--heads", "2,4", "--hidden", "32", "--intermediate", "8", "--epsilon", "1.0"]
codes = [main(["search", str(source), "--texts", str(texts), "--output-dir", str(out / "run"), *grid])]
distill = ["distill", str(out / "student"), str(source), str(out / "distilled"), "--texts", str(texts)]
codes.append(main([*distill, "--max-steps", "2", "--batch-size", "4"]))

from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

tokenizer = AutoTokenizer.from_pretrained(source)
rows = Dataset.from_dict({"text": texts.read_text().splitlines()}).map(
    lambda b: tokenizer(b["text"], truncation=True, max_length=16), batched=True, remove_columns=["text"]
)
torch.manual_seed(0)
student = BertModel(BertConfig(vocab_size=99, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=8))  # fmt: skip
teacher = BertModel.from_pretrained(source)
args = DistillationConfig(
    str(out / "trainer"), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2, use_cpu=True,
    ddp_backend="gloo", report_to=[], save_strategy="no", disable_tqdm=True,
)  # fmt: skip
trainer = DistillationTrainer(model=student, teacher=teacher, args=args, train_dataset=rows,
                              data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
trainer.train()
result = {
    "world_size": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
    "codes": codes,
    "writes": sorted(writes),
    "projection": trainer.projection.weight.detach().double().sum().item(),
    "student": float(sum(p.detach().double().sum() for p in student.parameters())),
}
real_write(out / f"rank{rank}.json", json.dumps(result))

if torch.distributed.is_initialized():  # a gloo group left to interpreter exit can abort a rank
    torch.distributed.barrier()  # both ranks have written their results before the group goes
    torch.distributed.destroy_process_group()
# Skip the interpreter's teardown (as tests/agora/ddp_agora.py: a native thread's destructor aborted a rank there once
# in CI after the results were written). The results are on disk; the test compares them.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
