"""Pieces of the distributed ``trainer=`` presets that YAML cannot express."""

from __future__ import annotations

import functools

from torch import nn


def is_decoder_layer(module: nn.Module) -> bool:
    # Llama, Qwen2, Gemma2 and SmolLM2 (a Llama) all name their transformer block "<Family>DecoderLayer".
    return type(module).__name__.endswith("DecoderLayer")


def decoder_layer_wrap_policy():
    """FSDP auto-wrap policy: one FSDP unit per transformer block, whatever the model family. The frozen reference copy
    (``reference.mode=frozen_copy``) is wrapped by the same rule, so its blocks are sharded like the policy's."""
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    return functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)
