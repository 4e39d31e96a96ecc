"""``launcher=submitit_local`` (pact_lightning/conf/launcher/submitit_local.yaml): the sweep's points as local
processes, each point that runs at the same time on GPUs of its own.

Hydra imports every module of ``hydra_plugins`` when an app starts, so this one imports nothing of pact_lightning at
import time (its package sets environment defaults) and defines nothing without hydra-submitit-launcher (an extra:
``[cluster]``, ``[dev]``): then ``LocalLauncher`` is a stand-in that says what to install (without_cluster.py)."""

from __future__ import annotations

import os
from typing import Any, Sequence

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher as SubmititLocalLauncher
except ImportError:
    SubmititLocalLauncher = None


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices or UUIDs)."""
    names = os.environ.get("CUDA_VISIBLE_DEVICES")
    if names is not None:
        return [name.strip() for name in names.split(",") if name.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


if SubmititLocalLauncher is not None:

    class LocalLauncher(SubmititLocalLauncher):
        """Hydra's submitit_local launcher with disjoint GPUs. submitit starts every point of a sweep at once and gives
        each the same GPUs 0..n-1, so 8B points ran out of memory on the same GPUs. Here the points of a GPU trainer
        run in waves of as many as the visible GPUs hold (``len(visible) // trainer.devices``), and each point, in its
        own process and before anything touches CUDA, keeps only its own ``trainer.devices`` of them in
        ``CUDA_VISIBLE_DEVICES``. Points of a CPU trainer all start at once, as before."""

        gpus: tuple[str, ...] = ()  # the GPUs the sweep shares out (GPU trainers only)
        per_point: int = 0  # GPUs of each point; 0 = CPU points, CUDA_VISIBLE_DEVICES left as submitit sets it

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
            from pact_lightning.errors import ConfigError

            trainer = self.config.trainer
            if trainer.accelerator not in ("gpu", "cuda"):
                return super().launch(job_overrides, initial_job_idx)
            if not isinstance(trainer.devices, int) or trainer.devices < 1:
                raise ConfigError(f"launcher=submitit_local shares the GPUs out by trainer.devices, which is "
                                  f"{trainer.devices!r}; set trainer.devices to the number of GPUs of each point")
            self.gpus, self.per_point = tuple(visible_gpus()), trainer.devices
            slots = len(self.gpus) // self.per_point
            if slots == 0:
                raise ConfigError(f"launcher=submitit_local: each point needs trainer.devices={self.per_point} GPU(s), "
                                  f"but {len(self.gpus)} are visible here; lower trainer.devices to at most "
                                  f"{len(self.gpus)}")
            returns = []
            for start in range(0, len(job_overrides), slots):  # a wave starts when the one before has finished
                returns += super().launch(job_overrides[start:start + slots], initial_job_idx + start)
            return returns

        def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                     singleton_state: dict[Any, Any]) -> Any:
            if self.per_point:
                # a wave's jobs have consecutive numbers, at most as many as there are slots: each its own slot
                slot = job_num % (len(self.gpus) // self.per_point)
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(
                    self.gpus[slot * self.per_point:(slot + 1) * self.per_point])
            return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)

else:
    from hydra_plugins.pact_lightning_launcher.without_cluster import ClusterExtraMissing

    class LocalLauncher(ClusterExtraMissing):  # type: ignore[no-redef]
        option = "submitit_local"
