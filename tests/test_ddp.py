"""DDP equivalence: 2 CPU processes (gloo) and 1 process with the same global batch take the same steps."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from runs import logged, run_train

# 20 examples at the global batch of 2 (1 per rank): the 10 steps are one epoch, the same 10 global batches in both runs
TEN_STEPS = ["method=pact", "reference.mode=adapter_disabled", "data.num_samples=20", "data.batch_size=2",
             "trainer.max_steps=10", "optim.optimizer.lr=1e-3"]


def test_two_process_ddp_gives_the_losses_and_weights_of_one_process(tmp_path):
    run_train(tmp_path / "one", TEN_STEPS)
    run_train(tmp_path / "two", TEN_STEPS + ["trainer=ddp_cpu"])
    for key in ("train/loss", "train/ce", "train/reg", "train/safety/mass_on_S", "train/tokens"):
        one, two = logged(tmp_path / "one", key), logged(tmp_path / "two", key)
        assert len(one) == 10 and two.keys() == one.keys(), key
        assert [two[s] for s in sorted(one)] == pytest.approx([one[s] for s in sorted(one)], abs=1e-5, rel=0), key
    a, b = (load_file(str(tmp_path / d / "final" / "adapter_model.safetensors")) for d in ("one", "two"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-5) for k in a)
