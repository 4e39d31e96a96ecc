"""Where hydra-submitit-launcher (the ``[cluster]`` extra) is not installed, ``launcher=slurm`` and
``launcher=submitit_local`` failed inside Hydra ("Could not find 'hydra/launcher/submitit_slurm'") with no hint. This
module then stores stand-ins for ``hydra/launcher/submitit_slurm`` and ``submitit_local`` whose launcher stops a
``-m`` run, before anything is written, saying what to install. A single run (no ``-m``) uses no launcher and runs
as it would with the extra. Like the rest of ``hydra_plugins``, this imports nothing of pact_lightning."""

from __future__ import annotations

from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher

try:
    import hydra_plugins.hydra_submitit_launcher.submitit_launcher  # noqa: F401

    INSTALLED = True
except ImportError:
    INSTALLED = False


def missing(option: str) -> str:
    return (f"Error: launcher={option} needs Hydra's submitit launcher (hydra-submitit-launcher, with submitit), which "
            "is not installed in this environment. Install the cluster extra — pip install -e \".[cluster]\" in a "
            "checkout of pact_lightning, or pip install \"pact_lightning[cluster]\" — and run the command again. "
            "Nothing was run or written.")


if not INSTALLED:

    class ClusterExtraMissing(Launcher):
        """Hydra's launcher for ``launcher=<option>`` without the extra: refuses at setup, before the sweep writes."""

        option = "slurm"

        def __init__(self, **params: Any) -> None:
            pass

        def setup(self, **kwargs: Any) -> None:
            raise SystemExit(missing(self.option))  # Hydra reports a SystemExit as it is, exit status 1

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
            raise SystemExit(missing(self.option))

    for name, target in (("submitit_slurm", f"{__name__}.ClusterExtraMissing"),
                         ("submitit_local", "hydra_plugins.pact_lightning_launcher.submitit_local.LocalLauncher")):
        ConfigStore.instance().store(group="hydra/launcher", name=name, node={"_target_": target},
                                     provider="pact_lightning (the [cluster] extra is not installed)")
