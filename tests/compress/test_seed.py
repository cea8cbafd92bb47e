"""`compress` with the same `seed` on the same machine gives a bit-identical student (issue 19 item 5)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from hf_bort import CompressionConfig, compress
from tiny_tasks import fast_settings


@pytest.mark.slow
def test_same_seed_from_a_pretrained_encoder_gives_a_bit_identical_student(tmp_path, tiny_source, data_dir):
    """The source's new classifier head was drawn before the seed was set: two runs differed (source and student)."""
    torch.manual_seed(1234)  # whatever the process drew before must not matter
    data = tmp_path / "train-and-test"  # no validation file: the dev split is carved (seeded) too
    data.mkdir()
    for name in ("train.csv", "test.csv"):
        (data / name).write_bytes((data_dir / name).read_bytes())
    runs = []
    for name in ("a", "b"):
        config = CompressionConfig(
            model=str(tiny_source),
            dataset=str(data),
            output_dir=str(tmp_path / name),
            **fast_settings(seed=3, finetune_epochs=1.0, distill_epochs=1.0, task_epochs=1.0, search_base_steps=2),
        )
        result = compress(config)
        assert result.report["source"]["finetuned_here"] and result.report["data"]["validation_carved"]
        assert result.report["search"]["searched"]
        runs.append(tmp_path / name)
        torch.rand(7)  # the second run starts from another global random state
    for folder in ("source-finetuned", "student"):
        a, b = (load_file(run / folder / "model.safetensors") for run in runs)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{folder}: {key} differs"
