"""What every Hydra app shares: the config location, resolvers and schemas, and the wrapper that always closes the W&B
run."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from pact_lightning import rundir, sweep
from pact_lightning.errors import ConfigError, PactError
from pact_lightning.objectives.settings import register_schemas
from pact_lightning.schema import validate
from pact_lightning.utils import precision

log = logging.getLogger(__name__)
T = TypeVar("T")  # what a task returns: a run's record (train, evaluate), the alignment report (align)

CONFIG_PATH = str(Path(__file__).resolve().parent / "conf")  # shipped inside the package (pyproject package-data)
sweep.register_resolvers()  # ${sweep_group:}, ${run_name:}, ${run_tags:} of pact_lightning/conf/logger/default.yaml
rundir.register_resolvers()  # ${record_subdir:} of pact_lightning/conf/hydra/default.yaml
register_schemas()  # method.objective's schemas (pact_lightning/objectives/settings.py), which the method YAMLs extend


def compose_group_option(group: str, option: str, key: str) -> DictConfig:
    """``pact_lightning/conf/<group>/<option>.yaml`` as Hydra composes it (``key`` is the setting that asked for it, for the error)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def composed() -> DictConfig:
        options = GlobalHydra.instance().config_loader().get_group_options(group)
        if option not in options:
            raise ConfigError(f"{key} contains {option!r}, which is not an option of pact_lightning/conf/{group}/ ({options})")
        return OmegaConf.select(compose(config_name=f"{group}/{option}"), group.replace("/", "."))

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app
        return composed()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return composed()


def finish_wandb(exit_code: int = 0) -> None:
    """Close the active W&B run, if any: in a multirun, the next job would otherwise reuse this job's run."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def own_error(err: BaseException) -> PactError | None:
    """The project's error inside Hydra's InstantiationException wrappers (a constructor refused its config), if any."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, PactError) else None


EXIT_INTERRUPTED = 143  # 128 + SIGTERM: the status a shell gives a process that SIGTERM ended


class Interrupted(SystemExit):
    """SIGTERM outside training (training stops at the end of its batch instead: utils/checkpoints.LastCheckpoint)."""

    def __init__(self) -> None:
        super().__init__(EXIT_INTERRUPTED)


def _on_sigterm(signum, frame) -> None:
    # During fit Lightning's own handler runs this one too; it then stops the run after the current batch.
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        raise Interrupted()


def set_hub_offline(offline: bool) -> None:
    """The hub off (``offline=true``) or on for this process: the environment for libraries imported later, and the
    module-level flags of huggingface_hub and datasets, which read the environment once, at import."""
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1" if offline else "0"
    huggingface_hub.constants.HF_HUB_OFFLINE = offline
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = offline


def task_wrapper(fn: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Runs a task: validates its config (``schema.py``) first, logs a failure and the wall time, and always finishes
    W&B (exit code 1 on failure). The project's own errors (they say what to change) are raised as themselves, not
    wrapped by Hydra's instantiate. A task stopped by SIGTERM exits with status 143, naming what it did not do."""

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> T:
        start, code = time.time(), 0
        set_hub_offline(bool(cfg.offline))  # nothing is fetched unless offline=false (cached copies still load)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            validate(cfg)
            precision.resolve_config(cfg)
            return fn(cfg)
        except (SIGTERMException, Interrupted):
            code = EXIT_INTERRUPTED
            log.error("%s was stopped by SIGTERM (exit status %d)%s", fn.__name__, code, sweep.unrun_points())
            raise SystemExit(code) from None
        except BaseException as err:
            code = 1
            log.exception("%s failed", fn.__name__)
            if (cause := own_error(err)) is not None and cause is not err:
                raise cause from None
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            finish_wandb(code)
            log.info("%s: %.1f s, output dir: %s", fn.__name__, time.time() - start, cfg.paths.get("output_dir"))

    return wrapped
