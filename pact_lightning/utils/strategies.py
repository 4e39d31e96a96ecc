"""Pieces of the distributed ``trainer=`` presets that YAML cannot express."""

from __future__ import annotations

import functools

import torch
from torch import nn


def is_decoder_layer(module: nn.Module) -> bool:
    # Llama, Qwen2, Gemma2 and SmolLM2 (a Llama) all name their transformer block "<Family>DecoderLayer".
    return type(module).__name__.endswith("DecoderLayer")


def decoder_layer_wrap_policy():
    """FSDP auto-wrap policy: one FSDP unit per transformer block, whatever the model family. The frozen reference copy
    (``reference.mode=frozen_copy``) is wrapped by the same rule, so its blocks are sharded like the policy's."""
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    return functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)


def shards_parameters(strategy) -> bool:
    """Whether ``strategy`` leaves each rank with only a shard of the weights after fit (FSDP, DeepSpeed ZeRO-3)."""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    return isinstance(strategy, FSDPStrategy) or (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3)


WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def gathered_trainable_state(strategy, policy: nn.Module) -> dict[str, torch.Tensor]:
    """The policy's trainable parameters, whole, on CPU, on every rank, keyed as in the unwrapped model.

    Every rank must call it (the gather is a collective). Only the trainable part is copied out: with LoRA that is the
    adapter, a few MB even for an 8B model; the frozen base weights are reloaded from disk by the caller. Under ZeRO-3
    only those parameters are gathered; under FSDP the flat parameters mix frozen and trainable weights, so the whole
    model is unsharded on each rank's device for the copy (one model's worth of device memory, briefly).
    """
    import contextlib

    from lightning.pytorch.strategies import FSDPStrategy

    params = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
    if isinstance(strategy, FSDPStrategy):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        gather = FSDP.summon_full_params(strategy.model, writeback=False, rank0_only=False)
    elif shards_parameters(strategy):
        import deepspeed

        gather = deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None)
    else:
        gather = contextlib.nullcontext()
    with gather:
        # under summon_full_params (use_orig_params) the original parameters are full-size views again
        params = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
        state = {}
        for name, p in params:
            for prefix in WRAPPER_PREFIXES:
                name = name.replace(prefix, "")
            state[name] = p.detach().to("cpu", copy=True)
    return state
