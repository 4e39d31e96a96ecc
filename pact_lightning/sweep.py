"""How one point of a sweep runs: one run directory, one DDP world, one W&B run — and what the sweeper optimises.

**DDP inside ``-m``.** For ``ddp``/``fsdp``/``deepspeed`` on one box, Lightning starts ranks 1..N-1 by re-running the
parent's command line (``sys.argv``) with ``hydra.run.dir`` appended. Inside a multirun job that command line is the
whole sweep (``-m`` and the comma lists), so each extra rank runs a sweep of its own, in a second multirun folder; under
``submitit_local`` the command line is submitit's, which rejects the appended ``hydra.*`` arguments. So a multirun job
whose Trainer would start its own ranks does not train in-process: it runs *its point* as a single run in a child
process — ``python -m pact_lightning.train <the job's overrides> hydra.mode=RUN hydra.run.dir=<the job's dir>`` — exactly
the command a user would type for that one run, where Lightning's re-run of ``sys.argv`` is correct. The job then
reads the child's ``results.json`` for the sweeper. Where the cluster starts the ranks (SLURM tasks, torchrun),
Lightning re-runs nothing and every task trains in-process as one rank of the same job.

**W&B names** (resolvers used by ``pact_lightning/conf/logger/default.yaml``): group = the sweep, name = the point's overrides,
tags = the experiment and the setting (``pact_lightning.setting.RunSetting``: method, λ, k, p, n, seed, model, task);
and the job directory names of ``pact_lightning/conf/hydra/default.yaml``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from pact_lightning.record import FILE, RunRecord
from pact_lightning.setting import RunSetting

log = logging.getLogger(__name__)

def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(*, _root_: DictConfig) -> str | None:
    """``<task name>-<sweep dir name>`` (e.g. ``train-2026-11-28_14-00-39``) when this run's directory lies inside
    ``hydra.sweep.dir`` (a multirun job, or the single-run child of one), else None: a plain run is in no group. Only
    the sweep names it — a sweep over ``experiment=a,b`` is still one group; the experiment is a tag."""
    hc = _hydra()
    if hc is None:
        return None
    sweep, out = Path(hc.sweep.dir).absolute(), Path(hc.runtime.output_dir).absolute()
    if sweep not in out.parents:
        return None
    return f"{_root_.get('task_name', 'run')}-{sweep.name}"


def sweep_points(multirun: DictConfig) -> list[list[str]] | None:
    """Every point of a basic-sweeper multirun (the config Hydra saved as ``multirun.yaml``) as its override list, in
    job order — the cartesian product the basic sweeper launches. None for other sweepers (Optuna) and for ``glob()``
    sweeps, whose points only the sweeper knows."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    hydra = multirun.hydra
    if not str(hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()]
    values: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(params + list(hydra.overrides.task)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep() and override.value_type != ValueType.GLOB_CHOICE_SWEEP:
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            return None
    return [list(point) for point in itertools.product(*values.values())]


def _multirun() -> DictConfig | None:
    """The running sweep's ``multirun.yaml`` (None outside a multirun, or when the sweeper saves none)."""
    hc = _hydra()
    path = Path(hc.sweep.dir) / "multirun.yaml" if hc is not None else None
    return OmegaConf.load(path) if path is not None and path.is_file() else None


def swept_keys() -> list[str]:
    """The keys the running sweep varies (sweeper params and comma/range overrides), in the sweep's order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = _multirun()
    if multirun is None:
        return []
    params = [f"{k}={v}" for k, v in (multirun.hydra.sweeper.get("params") or {}).items()]
    return [o.get_key_element() for o in OverridesParser.create().parse_overrides(
        params + list(multirun.hydra.overrides.task)) if o.is_sweep_override()]


def run_name() -> str | None:
    """The point's overrides as ``hydra.job.override_dirname`` lists them (same excluded keys and separators), the swept
    keys first, the others in the order given: ``method.lam=0,data.poison_ratio=0.1,model=tiny,...``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hc = _hydra()
    if hc is None:
        return None
    conf = hc.job.config.override_dirname
    overrides = [o for o in OverridesParser.create().parse_overrides(list(hc.overrides.task))
                 if o.key_or_group not in conf.exclude_keys]
    swept = swept_keys()
    overrides.sort(key=lambda o: swept.index(o.get_key_element()) if o.get_key_element() in swept else len(swept))
    return conf.item_sep.join(o.input_line for o in overrides).replace("=", conf.kv_sep) or None


def shorten(text: str, keep: int = 0, limit: int = 120) -> str:
    """``text`` itself up to ``limit`` characters, else its head (at least its first ``keep`` characters) and a hash of
    the whole, which keeps it unique."""
    if len(text) <= limit:
        return text
    return f"{text[:max(limit - 9, keep)]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def job_dirname() -> str:
    """``<job number>_<run_name>`` for ``hydra.sweep.subdir``, shortened with a hash past 120 characters (file names
    stop at 255 bytes); the swept keys come first and are never cut."""
    hc = _hydra()
    name = run_name()
    if not name:
        return str(hc.job.num)
    sep = hc.job.config.override_dirname.item_sep
    swept = [part for part in name.split(sep) if part.split(hc.job.config.override_dirname.kv_sep)[0] in swept_keys()]
    return f"{hc.job.num}_{shorten(name, keep=len(sep.join(swept)))}"


def unrun_points() -> str:
    """For a task stopped inside a sequential multirun: the points after this one, which this process will not run
    (an empty string elsewhere)."""
    hc = _hydra()
    multirun = _multirun()
    if hc is None or multirun is None or not str(hc.launcher.get("_target_", "")).endswith("BasicLauncher"):
        return ""
    points = sweep_points(multirun) or []
    rest = points[hc.job.num + 1:]
    if not rest:
        return ""
    return (f"; {len(rest)} later point(s) of the sweep in {hc.sweep.dir} were not run:\n  "
            + "\n  ".join(" ".join(p) for p in rest))


def run_tags(base, *, _root_: DictConfig) -> list[str]:
    """``base`` (the config's ``tags``) plus ``experiment=…`` and the run's setting (``method=…``, ``lam=…``, …)."""
    tags = list(base or [])
    hc = _hydra()
    if hc is not None and hc.runtime.choices.get("experiment"):
        tags.append(f"experiment={hc.runtime.choices.experiment}")
    return tags + RunSetting.from_config(_root_).tags()


def register_resolvers() -> None:
    for name, fn in (("sweep_group", sweep_group), ("run_name", run_name), ("run_tags", run_tags),
                     ("job_dirname", job_dirname)):
        OmegaConf.register_new_resolver(name, fn, replace=True)


def objective(cfg: DictConfig, results: RunRecord | Mapping[str, Any]) -> float | None:
    """The number a sweeper (Optuna) optimises: the final task accuracy (the last train loss without an evaluation).

    With ``objective.harmful_score_ceiling`` set (same units as ``harmful_score``), a run above the ceiling scores
    ``−(harmful_score − ceiling)``: below every run under it (task_acc ≥ 0), and the closer, the better — so
    ``direction: maximize`` finds the most accurate λ among the safe ones.
    """
    record = RunRecord.of(results)
    acc = record.final.rate("task_acc") if record.final is not None else None
    if acc is None:
        return (record.train or {}).get("train/loss")
    ceiling = cfg.objective.harmful_score_ceiling
    harmful = record.final.rate("harmful_score")
    if ceiling is None or harmful is None or harmful <= ceiling:
        return acc
    return -(harmful - ceiling)


def starts_own_ranks(cfg: DictConfig) -> bool:
    """True in a multirun job whose Trainer would start ranks 1..N-1 itself by re-running ``sys.argv``."""
    from hydra.types import RunMode
    from hydra.utils import instantiate
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    from pact_lightning.utils.precision import resolve as resolve_precision

    hc = _hydra()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return False
    # The Trainer's own decision (strategy, devices, cluster environment) rather than a copy of its rules; building a
    # Trainer without loggers or callbacks starts no processes and loads nothing.
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False,
                          precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)[0])
    strategy = trainer.strategy
    return (isinstance(strategy.launcher, _SubprocessScriptLauncher)
            and not strategy.cluster_environment.creates_processes_externally)


def rendezvous_port(sweep_dir: Path, job_num: int, low: int = 20000, high: int = 32000) -> int:
    """A free TCP port for one point's DDP rendezvous. Points that run at the same time (submitit_local, one node) must
    not share it, so each job starts its search at its own offset. The range sits below the kernel's ephemeral ports
    (32768+ on Linux): a port that is merely free *now* in that range can be taken by any outgoing connection (gloo's
    own pairs, W&B) before rank 0 binds it — which is how a "free" port gave EADDRINUSE."""
    span = high - low
    start = (int(hashlib.sha1(str(sweep_dir).encode()).hexdigest(), 16) + 101 * job_num) % span
    for step in range(span):
        port = low + (start + step) % span
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("", port))  # all interfaces: rank 0 listens on MASTER_ADDR, which need not be loopback
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free TCP port in [{low}, {high}) for this sweep point's DDP rendezvous; free some ports, or "
                       f"run the points one after another (no launcher=)")


def run_point_as_single_run(app: str) -> RunRecord:
    """Run this multirun job's point as ``python -m <app> <its overrides>`` in a single-run child process writing into
    this job's directory; return the child's record."""
    from pact_lightning.rundir import CLAIMED_ENV  # here, not at the top: rundir imports torch, the report this module

    hc = _hydra()
    out, sweep = Path(hc.runtime.output_dir).absolute(), Path(hc.sweep.dir).absolute()
    # hydra.sweep.dir keeps the W&B group (sweep_group) of the child; output_subdir=null keeps this job's .hydra/
    # (the sweep's record of the point) instead of overwriting it with the child's single-run view.
    cmd = [sys.executable, "-m", app, *hc.overrides.task, "hydra.mode=RUN", f'hydra.run.dir="{out}"',
           f'hydra.sweep.dir="{sweep}"', "hydra.output_subdir=null"]
    log.info("Point %s: its trainer starts its own ranks, so it runs as a single run: %s", hc.job.num, " ".join(cmd))
    # Always this point's own port: an inherited MASTER_PORT (Lightning sets one in any process that ran DDP setup) would
    # be the same for every point running at once.
    env = {**os.environ, "MASTER_PORT": str(rendezvous_port(sweep, hc.job.num)),
           CLAIMED_ENV: str(out)}  # this job holds the run directory's claim (rundir.py); the child shares it
    code = subprocess.run(cmd, cwd=hc.runtime.cwd, env=env).returncode
    results = out / FILE
    if code != 0 or not results.is_file():
        raise RuntimeError(f"the run of sweep point {hc.job.num} ({hc.job.override_dirname or 'no overrides'}) failed "
                           f"with exit code {code}; its log is in {out}")
    return RunRecord.read(results)
