"""Who may write into a run directory: one live run at a time, and a new run never writes over another run's outputs.

:class:`RunDirGuard` is a Hydra callback (``pact_lightning/conf/hydra/default.yaml``). For a single run it acts in ``on_run_start``,
before Hydra writes its ``.hydra/`` files or its log into the directory; for a multirun job in ``on_job_start``.

* A directory that holds another run's outputs (:data:`OUTPUTS`) is refused, unless the run continues it
  (:func:`continues`: ``ckpt_path=auto`` or ``last`` — or a path inside the directory — with a checkpoint of the same
  settings; a checkpoint from another directory never continues a used one) or ``overwrite=true``, which first moves
  the whole old directory aside to ``<dir>.replaced-<time>`` — a complete run directory of its own, never mixed with
  the new run's files.
* A finished run (its results.json) is never re-recorded: Hydra's ``.hydra/`` files there are left as they are
  (``hydra.output_subdir`` is ``${record_subdir:.hydra}``, :func:`record_subdir`), and a rerun with settings other than
  those it recorded in ``.hydra/config.yaml`` is refused by name (:func:`finished_changes`).
* A run or sweep directory on a filesystem with less free space than ``paths.min_free_mb`` is refused before Hydra
  writes into it (:func:`free_space_problem`): a full disk failed inside Hydra with a bare errno 28 and left a zero-byte
  ``.hydra/config.yaml``. The sweep directory is checked in ``on_multirun_start``, before the sweep writes anything.
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
import shutil
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
# A rerun of a finished run may change these and still be the same run (what to resume from, the guard's own switch).
RERUN_FREE = ("ckpt_path", "overwrite", "resume_allow")


def record_subdir(subdir: str | None, *, _parent_: DictConfig) -> str | None:
    """``hydra.output_subdir``: ``subdir`` (``.hydra``), or None — Hydra then writes no config files — when the run
    directory already holds a finished run's results.json: its record describes what ran there and is kept. A run that
    then trains there (a resume to more steps) records its own settings itself (:func:`record_config`)."""
    output_dir = OmegaConf.select(_parent_, "runtime.output_dir", default=None)
    if output_dir and (Path(str(output_dir)) / "results.json").is_file():
        return None
    return subdir


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("record_subdir"):
        OmegaConf.register_new_resolver("record_subdir", record_subdir)


register_resolvers()  # also when Hydra imports this module for its callback, before it reads hydra.output_subdir


def supersede(run_dir: Path, config: DictConfig, step: int) -> Path | None:
    """Before a finished run in ``run_dir`` trains further (a resume to more steps), move its results.json and Hydra
    record to ``<run_dir>/superseded/step-<step>-<time>/``: from then on the run is not finished until its new results
    describe its new weights (a requeue after a kill resumes or evaluates, never reports the old numbers), and nothing
    of the earlier result is lost. Its comparison runs' (``compare/<method>/results.json``) go to their own
    ``superseded/`` folders at once: they compared with the old weights, and resume with the main run. Returns that
    folder (None when there were no results)."""
    run_dir = Path(run_dir)
    results = run_dir / "results.json"
    if not results.is_file():
        return None
    kept = run_dir / "superseded" / f"step-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    kept.mkdir(parents=True, exist_ok=True)
    if (run_dir / ".hydra").is_dir():
        os.replace(run_dir / ".hydra", kept / ".hydra")
    os.replace(results, kept / "results.json")
    log.warning("%s described the weights at step %d; this run trains further, so it was moved to %s (the run is "
                "finished again when its new results.json is written)", results, step, kept)
    for sub in sorted((run_dir / "compare").glob("*/results.json")):  # its compare_with runs train further with it
        sub_kept = sub.parent / "superseded" / f"step-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        sub_kept.mkdir(parents=True, exist_ok=True)
        os.replace(sub, sub_kept / "results.json")
        log.warning("%s compared with the main run's step %d: moved to %s (the comparison run resumes and is "
                    "evaluated again with the main run)", sub, step, sub_kept)
    record_config(run_dir, config)
    return kept


def record_config(run_dir: Path, config: DictConfig) -> None:
    """Write Hydra's record of this run (``.hydra/config.yaml``, ``overrides.yaml``) into ``run_dir`` as Hydra
    would have, for a run that trains in a directory whose earlier record :func:`record_subdir` kept."""
    from hydra.core.hydra_config import HydraConfig

    from pact_lightning.utils.io import write_text

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = Path(run_dir) / ".hydra"
    write_text(out / "config.yaml", OmegaConf.to_yaml(config))
    write_text(out / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task))


def claim(run_dir: Path, *, config: DictConfig | None = None, overwrite: bool = False) -> FileLock | None:
    """Lock ``run_dir`` for the run of ``config`` (None where a parent holds the claim); refuse another run's outputs."""
    run_dir = Path(run_dir).absolute()
    if process_env().rank != 0 or os.environ.get(CLAIMED_ENV) == str(run_dir):
        return None
    if run_dir.is_dir():
        outputs = [name for name in OUTPUTS if (run_dir / name).exists()]
        changes = finished_changes(run_dir, config) if outputs else []
        if outputs and (changes or not continues(run_dir, config)):
            probe = _lock(run_dir)  # a live run in there must not be moved away under it
            probe.release()
            if not overwrite:
                raise ConfigError(_refusal(run_dir, outputs, config, changes))
            aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(run_dir, aside)
            log.warning("overwrite=true: moved the earlier run in %s to %s", run_dir, aside)
            if config is not None and "hydra" in config and (aside / "results.json").is_file():
                # record_subdir kept Hydra from writing over the finished run's record: this run records its own
                run_dir.mkdir(parents=True, exist_ok=True)
                record_config(run_dir, OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    return _lock(run_dir)


def _refusal(run_dir: Path, outputs: list[str], config: DictConfig | None, changes: list[str]) -> str:
    aside = f"pass overwrite=true to move the old directory aside to {run_dir.name}.replaced-<time>"
    if changes:
        return (f"{run_dir} holds another run's outputs ({', '.join(outputs)}): a finished run whose recorded "
                f"settings (.hydra/config.yaml) differ from this run's: {'; '.join(changes[:8])}. Nothing there is "
                "changed. Run these settings in another "
                f"hydra.run.dir (or hydra.sweep.dir), {aside}, or rerun with the recorded settings; to train the "
                "finished run further, resume it with ckpt_path=last and a larger trainer.max_steps")
    ckpt_path = OmegaConf.select(config, "ckpt_path", default=None) if config is not None else None
    if ckpt_path not in (None, "auto", "last") and not _inside(ckpt_path, run_dir):
        return (f"ckpt_path={ckpt_path} is a checkpoint of another run directory, and {run_dir} holds another "
                f"run's outputs ({', '.join(outputs)}), which this run would replace. Start the run from that "
                "checkpoint in a new hydra.run.dir (or resume it in its own directory with ckpt_path=last), or "
                f"{aside}")
    return (f"{run_dir} holds another run's outputs ({', '.join(outputs)}); resume that run with its own settings "
            f"(ckpt_path=auto or last), choose another hydra.run.dir (or hydra.sweep.dir), or {aside}")


def _inside(path: str, run_dir: Path) -> bool:
    try:
        return Path(path).expanduser().resolve().is_relative_to(Path(run_dir).resolve())
    except (OSError, ValueError):
        return False


def finished_changes(run_dir: Path, config: DictConfig | None) -> list[str]:
    """``key: recorded -> now`` for each setting in which a rerun (``ckpt_path=auto``: it would find the run finished
    and do nothing) of the finished run in ``run_dir`` (its results.json and Hydra's ``.hydra/config.yaml`` record
    there) differs from that record, the keys of :data:`RERUN_FREE` aside; none when the directory holds no finished,
    recorded run. An explicit resume (``ckpt_path=last``) to more steps trains, and then records its settings."""
    from pact_lightning.utils.checkpoints import flat

    recorded_path = Path(run_dir) / ".hydra" / "config.yaml"
    if config is None or OmegaConf.select(config, "ckpt_path", default=None) != "auto" or \
            not (Path(run_dir) / "results.json").is_file() or not recorded_path.is_file():
        return []
    try:
        recorded = flat(OmegaConf.to_container(OmegaConf.load(recorded_path), resolve=False))
    except Exception as err:  # noqa: BLE001 - an unreadable record: the other checks decide
        log.warning("cannot read %s (%s)", recorded_path, err)
        return []
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]) if "hydra" in config else config
    now = flat(OmegaConf.to_container(task, resolve=False))
    keys = sorted(k for k in set(recorded) | set(now) if recorded.get(k, "<absent>") != now.get(k, "<absent>")
                  and not any(k == f or k.startswith(f + ".") for f in RERUN_FREE))
    return [f"{k}: {recorded.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in keys]


def continues(run_dir: Path, config: DictConfig | None) -> bool:
    """Whether the run of ``config`` continues the one in ``run_dir``: a resume from the directory's own checkpoint
    (``ckpt_path=auto``, ``last`` or a path inside ``run_dir``) that recorded this run's settings — or, with
    ``ckpt_path=auto`` and no checkpoint, a results.json of this run's setting. A checkpoint from another directory
    never continues a used one: that run's outputs would be replaced."""
    ckpt_path = OmegaConf.select(config, "ckpt_path", default=None) if config is not None else None
    if ckpt_path is None:
        return False
    if ckpt_path not in ("auto", "last"):
        if not _inside(str(ckpt_path), run_dir):
            return False
        if Path(str(ckpt_path)).expanduser().resolve() != last_checkpoint(run_dir).resolve():
            return True  # another checkpoint of this directory: the resume checks its settings itself
    from pact_lightning.build import defining_config
    from pact_lightning.setting import RunSetting

    last = last_checkpoint(run_dir)
    if ckpt_path != "auto" and not last.is_file():
        return True  # ckpt_path=last without the file: the resume refuses it, naming the file
    try:
        if last.is_file():
            recorded = recorded_settings(last)
        else:
            results = run_dir / "results.json"
            return results.is_file() and RunSetting.from_results(json.loads(results.read_text())) == \
                RunSetting.from_config(config)
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint cannot show that this is the same run
        if (run_dir / "results.json").is_file():
            log.warning("ckpt_path=%s: cannot read the settings of the finished run in %s (%s)", ckpt_path, run_dir, err)
            return False
        # an unfinished run whose checkpoint is damaged: ckpt_path=auto moves it aside and starts afresh, `last`
        # refuses it naming the file (utils/checkpoints.resolve_ckpt_path); nothing here is lost either way
        log.warning("ckpt_path=%s: %s is unreadable (%s)", ckpt_path, last, err)
        return True
    changed = changed_settings(recorded, defining_config(config), list(config.resume_allow)) if recorded else []
    if ckpt_path != "auto" and changed:  # an explicit resume of this directory's run with other settings
        raise ConfigError(f"ckpt_path={ckpt_path} resumes the run in {run_dir}, which was trained with other "
                          f"settings ({len(changed)} differ: {', '.join(changed[:8])}); nothing there is changed. "
                          "Resume with the settings it was trained with, list the keys you mean to change in "
                          "resume_allow, or start a new run in another hydra.run.dir")
    return recorded is not None and not changed


def free_space_problem(directory: Path, config: DictConfig | None) -> str | None:
    """Why ``directory`` (it need not exist yet: its nearest existing parent is measured) cannot take a run: its
    filesystem has fewer free bytes than ``paths.min_free_mb`` (0 or null: not checked); None when it can."""
    from pact_lightning.schema import check

    floor_mb = check("paths.min_free_mb", OmegaConf.select(config, "paths.min_free_mb", default=None)) \
        if config is not None else None
    if not floor_mb:
        return None
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return None  # nothing measurable there: Hydra's own write reports the problem
    if free >= floor_mb * 2**20:
        return None
    return (f"{directory} is on a filesystem with {free} bytes free (measured at {existing}), less than "
            f"paths.min_free_mb={floor_mb} MiB; nothing was written there. Free space on that disk, or choose a "
            "hydra.run.dir (or hydra.sweep.dir, or paths.log_dir) on a disk with room; paths.min_free_mb=0 turns "
            "this check off")


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

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:  # before the sweeper creates the sweep directory and writes multirun.yaml there
            problem = free_space_problem(Path(config.hydra.sweep.dir), config)
        except ConfigError as err:
            raise Refused(err) from None
        if problem:
            raise Refused(ConfigError(problem))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode == RunMode.MULTIRUN:
            self._claim(Path(config.hydra.runtime.output_dir), config)

    def _claim(self, run_dir: Path, config: DictConfig) -> None:
        from pact_lightning.schema import path_problems

        try:
            problems = path_problems(config, expand=False)  # an empty PACT_CACHE or PROJECT_ROOT: before any write
            if "~" in Path(run_dir).parts:
                problems.append(f"the run directory {str(run_dir)!r} has a '~' that nothing expands (Hydra would create a "
                                "folder named '~'); write the path out, e.g. hydra.run.dir=$HOME/...")
            if process_env().rank == 0 and (full := free_space_problem(run_dir, config)):
                problems.append(full)
            if problems:
                raise ConfigError("invalid setting" + ("s" if len(problems) > 1 else "") + ":\n  " +
                                  "\n  ".join(problems))
            self.lock = claim(run_dir, config=config, overwrite=bool(OmegaConf.select(config, "overwrite",
                                                                                      default=False)))
        except ConfigError as err:
            raise Refused(err) from None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
