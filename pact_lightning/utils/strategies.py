"""Pieces of the distributed ``trainer=`` presets that YAML cannot express."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import torch
from torch import nn

from pact_lightning.errors import ConfigError


def is_decoder_layer(module: nn.Module) -> bool:
    # Llama, Qwen2, Gemma2 and SmolLM2 (a Llama) all name their transformer block "<Family>DecoderLayer".
    return type(module).__name__.endswith("DecoderLayer")


def decoder_layer_wrap_policy():
    """FSDP auto-wrap policy: one FSDP unit per transformer block, whatever the model family. The frozen reference copy
    (``reference.mode=frozen_copy``) is wrapped by the same rule, so its blocks are sharded like the policy's."""
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    return functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)


def fsdp_mixed_precision():
    """FSDP's mixed precision for ``trainer=fsdp``: compute in bf16, but reduce gradients and keep buffers (RoPE's
    ``inv_freq``) in float32; the sharded master parameters are float32. (Lightning's bf16-mixed preset reduces and
    keeps buffers in bf16.)"""
    from torch.distributed.fsdp import MixedPrecision

    return MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.float32)


def uses_fsdp(trainer_cfg) -> bool:
    """Whether a ``trainer`` config selects Lightning's FSDP strategy."""
    strategy = trainer_cfg.get("strategy")
    return strategy == "fsdp" or str(getattr(strategy, "get", lambda *_: "")("_target_", "")).endswith("FSDPStrategy")


def zero_stage(trainer_cfg) -> int | None:
    """The DeepSpeed ZeRO stage a ``trainer`` config selects (None without DeepSpeed)."""
    strategy = trainer_cfg.get("strategy")
    if hasattr(strategy, "get") and str(strategy.get("_target_", "")).endswith("DeepSpeedStrategy"):
        return int(strategy.get("stage", 2))
    return None


def deepspeed_half_mode(trainer_cfg) -> str | None:
    """The half-precision mode (``bf16`` or ``fp16``) DeepSpeed would run in, read from its config as Lightning
    completes it for ``trainer.precision`` (``DeepSpeedStrategy._format_config``: a half or mixed precision turns on
    DeepSpeed's own mode unless the config sets it); None without DeepSpeed or in float32."""
    from lightning.fabric.strategies.deepspeed import _format_precision_config
    from omegaconf import OmegaConf

    strategy = trainer_cfg.get("strategy")
    if isinstance(strategy, str) and strategy.startswith("deepspeed"):
        config = {}  # Lightning's registered deepspeed_* strategies: its default config, no precision section
    elif zero_stage(trainer_cfg) is not None:
        config = strategy.get("config") or {}
        config = json.loads(Path(config).read_text()) if isinstance(config, str) else OmegaConf.to_container(
            OmegaConf.create(config), resolve=True)
    else:
        return None
    _format_precision_config(config, str(trainer_cfg.precision), loss_scale=0, loss_scale_window=1000,
                             min_loss_scale=1, initial_scale_power=16, hysteresis=2)  # DeepSpeedStrategy's defaults
    return next((mode for mode in ("bf16", "fp16") if (config.get(mode) or {}).get("enabled")), None)


def check_deepspeed_precision(trainer_cfg) -> None:
    """Refuse a DeepSpeed run whose precision says something else than what DeepSpeed does. DeepSpeed's bf16/fp16 mode
    is not mixed precision: it casts the whole model to half, buffers included (RoPE's ``inv_freq``, whose rounding
    shifts every position's phase), and runs without autocast; the reference cache, built before DeepSpeed starts,
    then no longer equals the policy at step 0. Only ``bf16-true``/``16-true`` (pure half, warned about in
    ``build.policy``) say that."""
    mode = deepspeed_half_mode(trainer_cfg)
    precision = str(trainer_cfg.precision)
    if mode is None or precision == {"bf16": "bf16-true", "fp16": "16-true"}[mode]:
        return
    raise ConfigError(
        f"trainer.precision={precision} with DeepSpeed runs in DeepSpeed's own {mode} mode (Lightning turns it on for "
        f"a half or mixed precision, and so does a '{mode}' section of trainer.strategy.config), which is not mixed "
        f"precision: it casts the whole model to {mode}, RoPE's inv_freq buffers included, and runs without autocast. "
        "Use trainer.precision=32-true with DeepSpeed and no bf16/fp16 section in trainer.strategy.config (the "
        "deepspeed_zero2/zero3 presets: the whole model in float32), or trainer=fsdp for bf16 autocast with float32 "
        "master weights and buffers")


def master_weights(model: nn.Module, uniform: bool = False) -> nn.Module:
    """Mixed precision with float32 master weights: every trainable parameter and floating buffer (RoPE's
    ``inv_freq``) in float32, so AdamW updates full-precision values and positions keep their phase; frozen weights
    stay in the model's dtype (bf16 halves their memory) and autocast computes in bf16. ``uniform``: the whole model in
    float32 — FSDP flattens each unit into one tensor of a single dtype."""
    if uniform:
        return model.float()
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
    for b in model.buffers():
        if b.is_floating_point() and b.dtype != torch.float32:
            b.data = b.data.float()
    return model


def shards_parameters(strategy) -> bool:
    """Whether ``strategy`` leaves each rank with only a shard of the weights after fit (FSDP, DeepSpeed ZeRO-3)."""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    return isinstance(strategy, FSDPStrategy) or (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3)


WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def unwrapped_name(name: str) -> str:
    """A parameter name as the unwrapped model (and a full state dict) spells it: FSDP, activation-checkpointing and
    torch.compile wrappers add a segment that ``named_parameters()`` shows and state dicts do not."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def clip_gradients_under_fsdp(strategy, max_norm: float) -> bool:
    """Clip by global norm through the FSDP module's own ``clip_grad_norm_`` (the norm over every shard); Lightning's
    FSDP precision plugin refuses ``clip_grad_by_norm``. False when ``strategy`` is not FSDP."""
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(strategy, FSDPStrategy):
        return False
    strategy.model.clip_grad_norm_(max_norm)
    return True


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
            state[unwrapped_name(name)] = p.detach().to("cpu", copy=True)
    return state


@dataclasses.dataclass(frozen=True)
class ProcessEnv:
    """Where this process stands in a multi-process launch: its ranks, the world size, and the Lightning cluster
    environment that found them (its rendezvous address is read only when a process group is formed: Lightning's
    SLURM environment writes MASTER_ADDR/MASTER_PORT into the environment when asked for them)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    cluster: object | None = None


def process_env() -> ProcessEnv:
    """This process's ranks as its launcher set them, through Lightning's cluster-environment detection: torchrun
    (WORLD_SIZE, RANK, LOCAL_RANK), srun (SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID — srun sets no WORLD_SIZE) or
    Lightning's own child processes (LOCAL_RANK, NODE_RANK, WORLD_SIZE); a lone process otherwise."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for kind in (TorchElasticEnvironment, SLURMEnvironment):
        if kind.detect():
            env = kind()
            return ProcessEnv(env.global_rank(), env.local_rank(), env.world_size(), env)
    if "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:  # a child of Lightning's subprocess launcher
        local, world, node = int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]), int(
            os.environ.get("NODE_RANK", 0))
        rank = local if node == 0 else world  # Lightning sets no global rank; only "rank 0 or not" is read from it
        return ProcessEnv(rank, local, world)
    return ProcessEnv()


def local_device(env: ProcessEnv | None = None) -> torch.device:
    """This process's own accelerator: ``cuda:<local rank>`` when CUDA is available, else the CPU (never the bare
    ``cuda``, which is GPU 0 for every rank)."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", (env or process_env()).local_rank)
