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
from pact_lightning.utils import once, precision, progress, quiet, requeue

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


def finish_wandb(exit_code: int = 0, preempted: bool = False) -> None:
    """Close the active W&B run, if any: in a multirun, the next job would otherwise reuse this job's run. A requeued
    run is marked preempting, so W&B shows it preempted, not failed, until the requeued job resumes it."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        if preempted:
            wandb.run.mark_preempting()
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
    # During fit Lightning's own handler runs this one too; it then stops the run after the current batch. After a
    # requeue signal the task is already stopping (scontrol requeue itself sends SIGTERM): let it close.
    if signal.getsignal(signal.SIGTERM) is _on_sigterm and requeue.received is None:
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


def resume_command() -> str:
    from pact_lightning.utils.checkpoints import resume_command as command

    return command()


def sigterm_under_slurm() -> str:
    """What follows a SIGTERM under SLURM. SIGTERM is not requeued here: SLURM sends it at preemption, at the time
    limit and on scancel alike, and a cancelled job must stay cancelled."""
    if requeue.slurm_job() is None:
        return ""
    return ("; SLURM requeues this job only where the site's PreemptMode is REQUEUE. For a job that saves and requeues "
            "itself before its time limit, submit with --signal=USR1@90 --requeue (launcher=slurm does this with "
            f"submitit's USR2); else resubmit with\n  {resume_command()}")


def task_wrapper(fn: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Runs a task: validates its config (``schema.py``) first, logs a failure and the wall time, and always finishes
    W&B (exit code 1 on failure). The project's own errors (they say what to change) are raised as themselves, not
    wrapped by Hydra's instantiate. A task stopped by SIGTERM exits with status 143, naming what it did not do; one
    stopped by a requeue signal (``utils/requeue.py``) is requeued, then exits with 143 too."""

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig) -> T:
        start, code, requeued = time.time(), 0, False
        set_hub_offline(bool(cfg.offline))  # nothing is fetched unless offline=false (cached copies still load)
        quiet.known_noise()
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        signals = requeue.handled()  # SIGUSR1/USR2 for the whole task, not only during fit
        try:
            signals.__enter__()
            validate(cfg)
            once.configure(cfg.paths.get("lock_wait_s", once.WAIT_S))
            progress.configure(cfg.get("progress"))  # plain progress lines on a non-TTY (conf/progress/)
            precision.resolve_config(cfg)
            return fn(cfg)
        except (SIGTERMException, Interrupted, requeue.Requeued):
            code = EXIT_INTERRUPTED
            if requeue.received is not None:  # a requeue signal, not SIGTERM: requeue, and say so in one line
                requeued, line = requeue.hand_over(requeue.received, resume_command())
                log.warning("%s: %s (exit status %d)", fn.__name__, line, code)
            else:
                log.error("%s was stopped by SIGTERM (exit status %d)%s%s", fn.__name__, code, sweep.unrun_points(),
                          sigterm_under_slurm())
            raise SystemExit(code) from None
        except BaseException as err:
            code = 1
            log.exception("%s failed", fn.__name__)
            if (cause := own_error(err)) is not None and cause is not err:
                raise cause from None
            raise
        finally:
            signals.__exit__(None, None, None)
            signal.signal(signal.SIGTERM, previous)
            finish_wandb(code, preempted=requeued)
            log.info("%s: %.1f s, output dir: %s", fn.__name__, time.time() - start, cfg.paths.get("output_dir"))

    return wrapped
