"""Lightning's own FSDPStrategy on the CPU (gloo), for subprocess runs of the train app in tests/test_ddp.py
(``trainer.strategy._target_=cpu_fsdp.CPUFSDPStrategy``, with tests/ on PYTHONPATH). Three things differ from a GPU run,
each only because there is no GPU: Lightning refuses the FSDPStrategy class itself on the CPU (not a subclass), torch's
FSDP needs ``device_id=cpu`` there, and torch segfaults offloading a full state dict "to the CPU" from CPU tensors, so
full state dicts are gathered without offload. Wrapping, the precision plugin, saving and ``load_checkpoint`` are
Lightning's."""

from __future__ import annotations

import torch
from lightning.fabric.strategies import model_parallel
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies import fsdp as lightning_fsdp


def _full_state_dict_without_offload(module, world_size: int, rank0_only: bool = True):
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return FSDP.state_dict_type(module, StateDictType.FULL_STATE_DICT,
                                FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
                                FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only))


lightning_fsdp._get_full_state_dict_context = _full_state_dict_without_offload
model_parallel._get_full_state_dict_context = _full_state_dict_without_offload


class CPUFSDPStrategy(FSDPStrategy):
    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model, mixed_precision=self.mixed_precision_config,
                                        sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"),
                                        **self.kwargs)
