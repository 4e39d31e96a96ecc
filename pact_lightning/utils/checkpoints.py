"""Checkpoint IO: which checkpoint a run resumes from, and writing checkpoints so that a kill never leaves a half one."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import time
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pact_lightning.errors import ArtifactError, ConfigError
from pact_lightning.utils.io import atomic_path
from pact_lightning.utils.requeue import Requeued, deferred_to

log = logging.getLogger(__name__)


def last_checkpoint(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints" / "last.ckpt"


def resolve_ckpt_path(path: str | None, output_dir: str | Path) -> str | None:
    """``ckpt_path`` as a checked path: ``last`` is ``<output_dir>/checkpoints/last.ckpt``; a missing, truncated or
    damaged checkpoint fails here, before any model is loaded. ``auto`` is that file when it is there and intact, else
    None (start fresh, and say so; an unreadable one is moved aside, not overwritten)."""
    if path is None:
        return None
    if path == "auto":
        last = last_checkpoint(output_dir)
        if not last.exists():
            log.info("ckpt_path=auto: no checkpoint in %s, starting fresh", last.parent)
            return None
        try:
            resolved = resolve_ckpt_path(str(last), output_dir)
        except ArtifactError as err:
            aside = last.with_name(f"last.ckpt.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(last, aside)
            log.warning("ckpt_path=auto: %s; moved it to %s and starting fresh", err, aside)
            return None
        log.info("ckpt_path=auto: resuming from %s", last)
        return resolved
    if path == "last":
        path = last_checkpoint(output_dir)
    if Path(path).is_dir():
        if (Path(path) / "latest").is_file() or list(Path(path).glob("*/mp_rank_*_model_states.pt")):
            return str(path)  # a sharded DeepSpeed checkpoint: a folder its strategy reads and checks itself
        inside = sorted(Path(path).glob("**/last.ckpt"))
        raise ConfigError(f"ckpt_path={str(path)!r} is a directory, not a checkpoint"
                          + (f"; did you mean ckpt_path={inside[0]}?" if inside else "")
                          + " Pass a Lightning .ckpt file, or ckpt_path=last with the interrupted run's hydra.run.dir")
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={str(path)!r} does not exist; pass an existing Lightning checkpoint, or "
                          "ckpt_path=last together with the interrupted run's hydra.run.dir")
    try:  # torch.save writes a zip archive: a truncated one has no central directory, a damaged record a bad CRC
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        damaged = str(err)
    if damaged is not None:
        raise ArtifactError(f"ckpt_path={str(path)!r} is truncated or corrupt ({damaged}), or not a Lightning "
                            f"checkpoint; resume from another checkpoint in {Path(path).parent}, or start the run afresh"
                            " in the same directory with ckpt_path=auto (it moves the damaged file aside, to "
                            "last.ckpt.unreadable-<time>, and keeps everything else)")
    return str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint next to its target and renames it into place, so a run killed while saving keeps the
    previous complete ``last.ckpt`` (Lightning's own writer copies from /tmp, which is not atomic across filesystems)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class LastCheckpoint(L.Callback):
    """``<dirpath>/last.ckpt``, written (atomically, through :class:`AtomicCheckpointIO`) every
    ``every_n_train_steps`` optimiser steps, after the last training batch, and when the run is asked to stop:

    * SIGTERM (SLURM's preemption and timeout signal): every rank stops after the current batch, the checkpoint is
      written and the command that resumes the run is logged; the app then exits with status 143 (``app.py``);
    * a requeue signal (``utils/requeue.py``, sent ``signal_delay_s`` before the time limit): the same, then
      ``app.task_wrapper`` requeues the job — by submitit's own handler when submitit runs the job (Hydra's SLURM
      launcher: it resubmits the same point, up to ``max_num_timeout`` times), else by ``scontrol requeue``. The
      requeued job resumes from the checkpoint (``ckpt_path=auto``) in the same directory and the same W&B run.

    It writes at the end of a training batch, as Lightning's ModelCheckpoint does mid-epoch, and never at the end of an
    epoch, so a checkpoint always resumes at the next batch: resuming with a larger ``trainer.max_steps`` continues the
    same epoch, exactly as a longer run would have. Within gradient accumulation it waits for the optimiser step.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int = 50) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_train_steps = every_n_train_steps
        self.saved_step: int | None = None
        self.requeue: int | None = None  # the requeue signal received, if any: acted on at the end of the batch
        self._deferral = None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        self._deferral = deferred_to(self)  # outside fit the same signal stops the task at once (utils/requeue.py)
        self._deferral.__enter__()

    def _end_deferral(self) -> None:
        if self._deferral is not None:
            self._deferral.__exit__(None, None, None)
            self._deferral = None

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._end_deferral()
        if self.requeue is not None:  # it came after the last batch (the final checkpoint is written): stop now
            raise Requeued(self.requeue)

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._end_deferral()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.fast_dev_run:
            return
        stop = trainer.received_sigterm or self.requeue is not None
        if trainer.world_size > 1:  # one rank got the signal: every rank stops, and all save together
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        last = batch_idx + 1 >= trainer.num_training_batches
        if (batch_idx + 1) % trainer.accumulate_grad_batches and not last:
            return  # inside an accumulation window: the optimiser has not stepped yet
        final = (0 < trainer.max_steps <= trainer.global_step) or (
            last and trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1)
        due = trainer.global_step % self.every_n_train_steps == 0
        if trainer.global_step != self.saved_step and (stop or final or due):
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state a resume needs (said, not logged)
            self.saved_step = trainer.global_step
        if stop:
            trainer._signal_connector.received_sigterm = True  # Lightning then stops every rank after this batch
            if trainer.is_global_zero:
                what = signal.Signals(self.requeue).name if self.requeue is not None else "SIGTERM"
                log.warning("%s at step %d: checkpoint saved to %s; resume with:\n  %s", what, trainer.global_step,
                            self.path, resume_command())


def resume_command() -> str:
    """The command that resumes this run: its own overrides, its run directory and ``ckpt_path=last`` (``auto``
    before the run has a checkpoint)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "ckpt_path=last with the same settings and run directory"
    hc = HydraConfig.get()
    own = ("ckpt_path=", "hydra.run.dir=", "hydra.sweep.dir=", "hydra.mode=", "hydra.output_subdir=")
    overrides = [o for o in hc.overrides.task if not o.startswith(own)]
    ckpt = "last" if last_checkpoint(hc.runtime.output_dir).exists() else "auto"  # last fails without a checkpoint
    return shlex.join(["python", "-m", "pact_lightning.train", *overrides,
                       f"hydra.run.dir={hydra_value(hc.runtime.output_dir)}", f"ckpt_path={ckpt}"])


def hydra_value(text: str) -> str:
    """``text`` as a value of a Hydra command-line override: bare where its grammar takes it, else quoted (a path with
    non-ASCII letters, spaces or brackets), with its quotes and backslashes escaped."""
    import re

    if re.fullmatch(r"[A-Za-z0-9_/.:+@%\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a.b.c": value}``."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= flat(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")
    return out


def changed_settings(recorded: dict[str, Any] | None, run: dict[str, Any], allow: list[str]) -> list[str]:
    """The dotted keys whose value differs between the settings a checkpoint ``recorded`` and this ``run``'s, except
    those ``allow`` lists (a key or a prefix of keys); none when the checkpoint recorded none."""
    if not recorded:
        return []
    before, now = flat(recorded), flat(run)
    return sorted(k for k in set(before) | set(now) if before.get(k, "<absent>") != now.get(k, "<absent>")
                  and not any(k == a or k.startswith(a + ".") for a in allow))


def recorded_settings(path: str | Path) -> dict[str, Any] | None:
    """The defining settings a checkpoint recorded (``pact_run``); None when it recorded none."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("pact_run")


# Inputs known only once fit's setup prepared them (PactModule.setup records, PactModule.on_load_checkpoint checks).
PREPARED_INPUTS = ("reference.cache",)


def changed_inputs(recorded: dict[str, Any] | None, now: dict[str, Any] | None, allow: list[str]) -> list[str]:
    """``<setting> <file>`` for each input whose content differs from what a checkpoint recorded (by setting, with
    its file and sha256: ``build.input_digests``), except those ``allow`` lists; none when it recorded none."""
    if not recorded or now is None:
        return []
    out = []
    for key, before in recorded.items():
        after = now.get(key)
        if any(key == a or key.startswith(a + ".") for a in allow) or (after or {}).get("sha256") == before["sha256"]:
            continue
        if after is None:
            out.append(f"{key} ({before['file']}) is no longer an input of this run")
        elif after["file"] != before["file"]:
            out.append(f"{key} was {before['file']} and is {after['file']} now, with other content")
        else:
            out.append(f"{key}: {after['file']} has changed (sha256 {before['sha256'][:12]}… then, "
                       f"{after['sha256'][:12]}… now)")
    return out


def check_resume(path: str, run: dict[str, Any], trainable: dict[str, torch.Size], *, allow: list[str],
                 steps: int, results_exist: bool, inputs: dict[str, Any] | None = None) -> int | None:
    """Refuse a resume from ``path`` that would not continue this run: a checkpoint trained with other settings (the
    keys of ``run`` that differ and that ``allow`` does not list) or on inputs whose content changed since
    (``inputs``: :func:`changed_inputs`), one that lacks a trainable tensor of this model or holds it in another
    shape, or one that already took the run's ``steps`` optimiser steps when its results exist. Returns the
    checkpoint's step (None for a sharded checkpoint, which its strategy checks)."""
    if Path(path).is_dir():  # a sharded (DeepSpeed) checkpoint: its strategy checks it
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    before = flat(ckpt.get("pact_run") or {})
    changed = changed_settings(ckpt.get("pact_run"), run, allow)
    if before and changed:
        now = flat(run)
        shown = "; ".join(f"{k}: {before.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in changed[:8])
        raise ConfigError(f"ckpt_path={path} was trained with other settings ({len(changed)} differ: {shown}); resume "
                          "with the settings it was trained with, start a new run in another directory, or list the "
                          "keys you mean to change in resume_allow (e.g. resume_allow=[" + changed[0] + "])")
    recorded = {k: v for k, v in (ckpt.get("pact_inputs") or {}).items() if k not in PREPARED_INPUTS}
    changed = changed_inputs(recorded, inputs, allow)
    if changed:
        raise ConfigError(f"ckpt_path={path} was trained on inputs that have changed since: {'; '.join(changed)}. "
                          "Resuming would continue the run on other data than it started with. Put back the files it "
                          "was trained on, start a new run in another hydra.run.dir, or, if the change is meant, list "
                          "the setting in resume_allow (e.g. resume_allow=[" + changed[0].split()[0].rstrip(":") + "])")
    state = ckpt.get("state_dict") or {}
    missing = [name for name in trainable if name not in state]
    if missing:
        raise ArtifactError(f"ckpt_path={path} holds none of this model's trainable weights {missing[0]!r}"
                            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}: it was saved for another "
                            "model (or adapter); resuming would restore the step and optimiser but not the weights. "
                            "Resume from this run's own checkpoint or start afresh")
    wrong = [(n, tuple(state[n].shape), tuple(s)) for n, s in trainable.items() if tuple(state[n].shape) != tuple(s)]
    if wrong:
        name, saved, here = wrong[0]
        raise ArtifactError(f"ckpt_path={path} was saved for another model shape: {name} is {saved} there and {here} "
                            "here; resume with the model and LoRA settings it was trained with")
    step = int(ckpt.get("global_step", 0))
    if step >= steps:
        if results_exist:
            raise ConfigError(f"ckpt_path={path} is at step {step}, the end of this run (it takes {steps} optimiser "
                              "step(s)): nothing is left to train and its results.json exists (left as it is); raise "
                              "trainer.max_steps or trainer.max_epochs to train further")
        log.info("ckpt_path=%s is at step %d, the end of this run: nothing to train, the run evaluates", path, step)
    return step
