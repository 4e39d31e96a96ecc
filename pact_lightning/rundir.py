"""Who may write into a run directory: one live run at a time, and a new run never writes over another run's outputs.

:class:`RunDirGuard` is a Hydra callback (``conf/hydra/default.yaml``). For a single run it acts in ``on_run_start``,
before Hydra writes its ``.hydra/`` files or its log into the directory; for a multirun job in ``on_job_start``.

* A directory that holds another run's outputs (:data:`OUTPUTS`) is refused, unless the run resumes it
  (``ckpt_path`` set: the resume itself checks that the checkpoint is this run's, ``utils/checkpoints.py``) or
  ``overwrite=true``, which first moves the whole old directory aside to ``<dir>.replaced-<time>`` — a complete run
  directory of its own, never mixed with the new run's files.
* A lock on ``<dir>/.run.lock`` (``fcntl.flock`` through filelock: released by the kernel when the process dies, even
  by SIGKILL) keeps a second live run out while the first runs.

Only the process that owns the run claims it: DDP ranks other than 0 (Lightning re-runs the command with the same
``hydra.run.dir``) and the single-run child of a multirun point (``sweep.run_point_as_single_run``, told through
:data:`CLAIMED_ENV`) share their parent's claim.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pact_lightning.errors import ConfigError
from pact_lightning.utils.strategies import process_env

log = logging.getLogger(__name__)

OUTPUTS = ("results.json", "final", "poison_ledger.json", "checkpoints")
LOCK = ".run.lock"
CLAIMED_ENV = "PACT_RUN_DIR_CLAIMED"  # a parent that holds the claim on this directory passes its path down


def claim(run_dir: Path, *, resuming: bool, overwrite: bool) -> FileLock | None:
    """Lock ``run_dir`` for this run (None where a parent holds the claim); refuse another run's outputs."""
    run_dir = Path(run_dir).absolute()
    if process_env().rank != 0 or os.environ.get(CLAIMED_ENV) == str(run_dir):
        return None
    if run_dir.is_dir() and not resuming:
        outputs = [name for name in OUTPUTS if (run_dir / name).exists()]
        if outputs:
            probe = _lock(run_dir)  # a live run in there must not be moved away under it
            probe.release()
            if not overwrite:
                raise ConfigError(
                    f"{run_dir} holds another run's outputs ({', '.join(outputs)}); resume that run with "
                    "ckpt_path=last, choose another hydra.run.dir (or hydra.sweep.dir), or pass overwrite=true to move "
                    f"the old directory aside to {run_dir.name}.replaced-<time>")
            aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(run_dir, aside)
            log.warning("overwrite=true: moved the earlier run in %s to %s", run_dir, aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    return _lock(run_dir)


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
            self.lock = claim(run_dir, **_intent(config))
        except ConfigError as err:
            raise Refused(err) from None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _intent(config: DictConfig) -> dict[str, bool]:
    return {"resuming": OmegaConf.select(config, "ckpt_path", default=None) is not None,
            "overwrite": bool(OmegaConf.select(config, "overwrite", default=False))}
