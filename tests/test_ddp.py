"""DDP equivalence: 2 CPU processes (gloo) and 1 process with the same global batch take the same steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
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


def _fsdp_worker(rank: int, world: int, port: int, results) -> None:
    """One rank: the tiny LoRA policy with 'trained' adapter weights, sharded by real (CPU) FSDP with the preset's wrap
    policy; then finish.unsharded_policy rebuilds the whole model from the shards."""
    import os
    from types import SimpleNamespace

    import torch.distributed as dist
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from conftest import compose
    from pact_lightning import finish
    from pact_lightning.models.loading import load_model
    from pact_lightning.utils.strategies import decoder_layer_wrap_policy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model_cfg = compose("train", ["model=tiny"]).model
        policy, _ = load_model(model_cfg)
        torch.manual_seed(0)  # the same "trained" adapter on every rank
        for p in policy.parameters():
            if p.requires_grad:
                p.data.normal_(std=0.5)
        ids = torch.arange(3, 19).view(2, 8)
        with torch.no_grad():
            expected = policy(input_ids=ids).logits
        wrapped = FSDP(policy, auto_wrap_policy=decoder_layer_wrap_policy(), use_orig_params=True,
                       device_id=torch.device("cpu"))
        strategy = FSDPStrategy(parallel_devices=[torch.device("cpu")] * world)
        strategy.model = wrapped
        local = sum(p.numel() for p in policy.parameters() if p.requires_grad)
        whole = finish.unsharded_policy(SimpleNamespace(strategy=strategy), model_cfg, policy)
        with torch.no_grad():
            got = whole(input_ids=ids).logits
        results[rank] = (local, sum(p.numel() for p in whole.parameters() if p.requires_grad),
                         (got - expected).abs().max().item(), any(isinstance(m, FSDP) for m in whole.modules()))
    finally:
        dist.destroy_process_group()


def test_fsdp_finish_rebuilds_the_whole_trained_policy_on_every_rank():
    """After FSDP fit each rank holds a shard; saving and evaluating need the whole trained model on every rank.
    Lightning refuses FSDP without a GPU, so this drives torch's FSDP directly (gloo, CPU) with the preset's wrapping."""
    import torch.multiprocessing as mp

    from pact_lightning.sweep import rendezvous_port

    results = mp.Manager().dict()
    mp.spawn(_fsdp_worker, args=(2, rendezvous_port(Path.cwd(), 7), results), nprocs=2)
    (local0, full, diff0, wrapped0), (local1, _, diff1, wrapped1) = results[0], results[1]
    assert local0 + local1 == full and full > 0  # the adapter really was split between the ranks
    assert diff0 <= 1e-6 and diff1 <= 1e-6  # both ranks get the trained model's logits back
    assert not wrapped0 and not wrapped1  # a plain module: generation does not need the ranks in lockstep


def _tiny_module_with_trained_adapter():
    """A PactModule around the tiny LoRA policy whose adapter holds fixed 'trained' values (the same on every rank)."""
    import functools

    from conftest import compose
    from pact_lightning.models.loading import load_model
    from pact_lightning.models.module import PactModule
    from pact_lightning.objectives.sft import SFT

    policy, _ = load_model(compose("train", ["model=tiny"]).model)
    torch.manual_seed(0)
    for p in policy.parameters():
        if p.requires_grad:
            p.data.normal_(std=0.5)
    return PactModule(policy, SFT(), None, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3))


def _fsdp_clip_and_checkpoint_worker(rank: int, world: int, port: int, results) -> None:
    """One rank of a 2-rank CPU FSDP world (gloo) with the preset's wrapping, the LightningModule wrapped as Lightning's
    FSDPStrategy wraps it: PactModule's clipping hook, then its checkpoint hooks on Lightning's full state dict."""
    import os
    from types import SimpleNamespace

    import torch.distributed as dist
    from lightning.pytorch.plugins.precision import FSDPPrecision
    from lightning.pytorch.strategies import FSDPStrategy
    from lightning.pytorch.utilities.exceptions import MisconfigurationException
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from pact_lightning.utils.strategies import decoder_layer_wrap_policy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        module = _tiny_module_with_trained_adapter()
        trained = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
        wrapped = FSDP(module, auto_wrap_policy=decoder_layer_wrap_policy(), use_orig_params=True,
                       device_id=torch.device("cpu"))
        strategy = FSDPStrategy(parallel_devices=[torch.device("cpu")] * world,
                                precision_plugin=FSDPPrecision("32-true"))
        strategy.model = wrapped
        module._trainer = SimpleNamespace(strategy=strategy)
        try:  # why the hook exists: Lightning's FSDP plugin refuses norm clipping
            strategy.precision_plugin.clip_grad_by_norm(torch.optim.SGD(module.parameters(), lr=0.1), 0.05)
            plugin_refuses = False
        except MisconfigurationException:
            plugin_refuses = True
        ids = torch.arange(3, 19).view(2, 8) + rank  # each rank its own batch
        (1e4 * wrapped(input_ids=ids, attention_mask=torch.ones_like(ids)).float().pow(2).mean()).backward()
        before = wrapped.clip_grad_norm_(float("inf")).item()  # the global norm, nothing clipped
        module.configure_gradient_clipping(None, before / 2, "norm")
        after = wrapped.clip_grad_norm_(float("inf")).item()

        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=False)):
            checkpoint = {"state_dict": wrapped.state_dict()}  # what FSDPStrategy(state_dict_type="full") saves
        module.on_save_checkpoint(checkpoint)
        fresh = _tiny_module_with_trained_adapter()
        with torch.no_grad():
            for p in fresh.parameters():
                if p.requires_grad:
                    p.zero_()
        fresh.on_load_checkpoint(checkpoint)
        fresh.load_state_dict(checkpoint["state_dict"], strict=False)
        restored = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
        results[rank] = (plugin_refuses, before, after, sorted(checkpoint["state_dict"]) == sorted(trained),
                         max((restored[n] - trained[n]).abs().max().item() for n in trained))
    finally:
        dist.destroy_process_group()


def test_fsdp_clips_through_the_fsdp_module_and_checkpoints_hold_every_adapter_tensor():
    """Under FSDP, PactModule's clipping hook clips the global gradient norm (Lightning's FSDP precision plugin would
    raise), and its checkpoint keeps every adapter tensor of Lightning's full state dict — named without FSDP's wrapper
    segments — so loading it back restores the adapter exactly."""
    import torch.multiprocessing as mp

    from pact_lightning.sweep import rendezvous_port

    results = mp.Manager().dict()
    mp.spawn(_fsdp_clip_and_checkpoint_worker, args=(2, rendezvous_port(Path.cwd(), 11), results), nprocs=2)
    for rank in (0, 1):
        plugin_refuses, before, after, every_adapter_tensor, restore_error = results[rank]
        assert plugin_refuses and before > 0 and after == pytest.approx(before / 2, rel=1e-4)
        assert every_adapter_tensor and restore_error == 0.0
    assert results[0][1] == pytest.approx(results[1][1])  # one global norm, agreed by the ranks


def test_a_checkpoint_without_the_trainable_tensors_fails_to_load_loudly():
    """The FSDP bug this guards against: the saved names did not match, nothing was restored, and strict_loading=False
    let the resume go on with the step and optimiser of the checkpoint and untrained weights."""
    from pact_lightning.errors import ArtifactError

    module = _tiny_module_with_trained_adapter()
    wrapped_names = {f"policy._fsdp_wrapped_module.{n}": torch.zeros(1) for n in module.trainable_shapes()}
    with pytest.raises(ArtifactError, match="holds none of 8 trainable tensor"):
        module.on_load_checkpoint({"state_dict": wrapped_names})


# Lightning's FSDPStrategy on two CPU ranks (tests/cpu_fsdp.py), with the fsdp preset's wrapping and bf16-mixed
FSDP_ON_CPU = ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2",
               "trainer.strategy._target_=cpu_fsdp.CPUFSDPStrategy"]


def test_fsdp_wraps_a_frozen_copy_fits_and_resumes_through_lightnings_restore_path(tmp_path):
    """Full fine-tuning of a bf16 model against the authors' frozen copy (kl_full), on two gloo ranks of Lightning's
    FSDPStrategy. The copy gets the policy's float32 (FSDP flattens its embeddings and head into one unit with the
    policy's), so it wraps, fits, and equals the policy at step 0. Then `ckpt_path=last` resumes through
    trainer.fit(ckpt_path=...): FSDP's load_checkpoint pops the state dict and loads it itself, and the resumed step
    starts from the trained weights — a resume that lost them would start at the aligned weights, KL 0 to the copy."""
    path = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}  # cpu_fsdp, for every rank
    run = FSDP_ON_CPU + ["method=kl_full", "model.lora=null", "reference.mode=frozen_copy", "model.dtype=bfloat16",
                         "optim.optimizer.lr=1e-2"]
    run_train(tmp_path, run + ["trainer.max_steps=2"], env=env)
    run_train(tmp_path, run + ["trainer.max_steps=3", "ckpt_path=last"], env=env)
    reg, ce = logged(tmp_path, "train/reg"), logged(tmp_path, "train/ce")
    assert sorted(reg) == [0, 1, 2] and len(list(tmp_path.glob("csv/version_*"))) == 2  # step 2 in the resumed run
    assert reg[0] < 1e-5  # the copy computes what the policy computes before its first step
    assert reg[2] > 1e-3 and ce[2] < ce[0] - 1.0, (reg, ce)  # the resumed step: trained weights, away from the copy
