"""Who may write into a run directory: one live run at a time, and a new run never writes over another run's outputs.

:class:`RunDirGuard` is a Hydra callback (``pact_lightning/conf/hydra/default.yaml``). For a single run it acts in ``on_run_start``,
before Hydra writes its ``.hydra/`` files or its log into the directory; for a multirun job in ``on_job_start``.

* A directory that holds another run's outputs (:data:`OUTPUTS`) is refused, unless the run continues it
  (:func:`continues`: ``ckpt_path=auto`` with a checkpoint of the same settings, or an explicit resume, which then
  checks the checkpoint itself) or ``overwrite=true``, which first moves the whole old directory aside to
  ``<dir>.replaced-<time>`` — a complete run directory of its own, never mixed with the new run's files.
* A lock on ``<dir>/.run.lock`` (``fcntl.flock`` through filelock: released by the kernel when the process dies, even
  by SIGKILL) keeps a second live run out while the first runs.

Only the process that owns the run claims it: DDP ranks other than 0 (Lightning re-runs the command with the same
``hydra.run.dir``) and the single-run child of a multirun point (``sweep.run_point_as_single_run``, told through
:data:`CLAIMED_ENV`) share their parent's claim.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pact_lightning.errors import ConfigError
from pact_lightning.utils.checkpoints import changed_settings, last_checkpoint, recorded_settings
from pact_lightning.utils.strategies import process_env

log = logging.getLogger(__name__)

OUTPUTS = ("results.json", "final", "poison_ledger.json", "checkpoints")
LOCK = ".run.lock"
CLAIMED_ENV = "PACT_RUN_DIR_CLAIMED"  # a parent that holds the claim on this directory passes its path down


def claim(run_dir: Path, *, config: DictConfig | None = None, overwrite: bool = False) -> FileLock | None:
    """Lock ``run_dir`` for the run of ``config`` (None where a parent holds the claim); refuse another run's outputs."""
    run_dir = Path(run_dir).absolute()
    if process_env().rank != 0 or os.environ.get(CLAIMED_ENV) == str(run_dir):
        return None
    if run_dir.is_dir():
        outputs = [name for name in OUTPUTS if (run_dir / name).exists()]
        if outputs and not continues(run_dir, config):
            probe = _lock(run_dir)  # a live run in there must not be moved away under it
            probe.release()
            if not overwrite:
                raise ConfigError(
                    f"{run_dir} holds another run's outputs ({', '.join(outputs)}); resume that run with its own "
                    "settings (ckpt_path=auto or last), choose another hydra.run.dir (or hydra.sweep.dir), or pass "
                    f"overwrite=true to move the old directory aside to {run_dir.name}.replaced-<time>")
            aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(run_dir, aside)
            log.warning("overwrite=true: moved the earlier run in %s to %s", run_dir, aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    return _lock(run_dir)


def continues(run_dir: Path, config: DictConfig | None) -> bool:
    """Whether the run of ``config`` continues the one in ``run_dir``: an explicit resume (``ckpt_path=last`` or a
    path; the resume then checks the checkpoint itself), or ``ckpt_path=auto`` with the directory's checkpoint —
    or, without one, its results.json — recording this run's settings."""
    ckpt_path = OmegaConf.select(config, "ckpt_path", default=None) if config is not None else None
    if ckpt_path is None:
        return False
    if ckpt_path != "auto":
        return True
    from pact_lightning.build import defining_config
    from pact_lightning.setting import RunSetting

    last = last_checkpoint(run_dir)
    try:
        if last.is_file():
            recorded = recorded_settings(last)
            return recorded is not None and not changed_settings(recorded, defining_config(config),
                                                                 list(config.resume_allow))
        results = run_dir / "results.json"
        return results.is_file() and RunSetting.from_results(json.loads(results.read_text())) == \
            RunSetting.from_config(config)
    except Exception as err:  # noqa: BLE001 - an unreadable record cannot show that this is the same run
        log.warning("ckpt_path=auto: cannot read the settings of the run in %s (%s)", run_dir, err)
        return False


def _lock(run_dir: Path) -> FileLock:
    lock = FileLock(run_dir / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{run_dir} is in use by another live run (it holds {run_dir / LOCK}); wait for it to end "
                          "or choose another hydra.run.dir") from None
    return lock


class Refused(SystemExit):
    """A refused run directory, raised from the Hydra callback as a SystemExit: Hydra turns a callback's ordinary
    exceptions into warnings and carries on, so nothing else would stop the run. Exit status 1, the message on stderr."""

    def __init__(self, err: ConfigError) -> None:
        super().__init__(f"Error: {err}")


class RunDirGuard(Callback):
    """The Hydra side of :func:`claim`: single runs claim in ``on_run_start``, multirun jobs in ``on_job_start``."""

    def __init__(self) -> None:
        self.lock: FileLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(Path(config.hydra.run.dir), config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode == RunMode.MULTIRUN:
            self._claim(Path(config.hydra.runtime.output_dir), config)

    def _claim(self, run_dir: Path, config: DictConfig) -> None:
        try:
            self.lock = claim(run_dir, config=config, overwrite=bool(OmegaConf.select(config, "overwrite",
                                                                                      default=False)))
        except ConfigError as err:
            raise Refused(err) from None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
