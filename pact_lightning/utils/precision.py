"""``precision: auto``: the Lightning precision a run should use on the hardware it finds.

bf16 autocast is fast and safe (float32 master weights, utils/strategies.master_weights) on GPUs with bf16 units. On
a CPU it depends on the instruction set: with AVX-512 BF16/AMX it is faster than float32, with AVX2 alone one LoRA
linear layer measured 6.7× slower, and its rounding differs between the two, so the same command would give another
aligned model on another x86 machine. ``auto`` therefore means bf16-mixed on a CUDA device that supports bf16 and
32-true everywhere else, so CPU runs give the same numbers on any CPU.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

AUTO = "auto"


def resolve(precision: str, accelerator: str = AUTO) -> tuple[str, str]:
    """The concrete precision for ``precision`` on ``accelerator``, and why (``precision`` itself when not auto)."""
    if str(precision) != AUTO:
        return str(precision), "as configured"
    if accelerator in ("gpu", "cuda", AUTO) and torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"CUDA device {torch.cuda.get_device_name()} supports bf16"
        return "32-true", f"CUDA device {torch.cuda.get_device_name()} has no bf16 support"
    return "32-true", f"no CUDA device (CPU capability {torch.backends.cpu.get_cpu_capability()}): float32"


def resolve_config(cfg: DictConfig) -> None:
    """Replace ``auto`` in ``trainer.precision`` and ``align.trainer.precision`` by what it means here, in place and before
    anything reads them (the run's record, its checkpoint and the aligned model's cache key hold the concrete value);
    logs the choice."""
    accelerator = str(cfg.get("trainer", {}).get("accelerator", AUTO))
    for key in ("trainer", "align.trainer"):
        section = OmegaConf.select(cfg, key)
        if section is not None and str(section.get("precision")) == AUTO:
            value, why = resolve(AUTO, accelerator)
            with open_dict(section):
                section.precision = value
            log.info("%s.precision=auto → %s (%s)", key, value, why)
