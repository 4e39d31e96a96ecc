"""The requeue signals (SIGUSR1, submitit's USR2), handled for the whole task (``app.task_wrapper``).

During fit the signal waits for the end of the current batch, where ``checkpoints.LastCheckpoint`` writes
``last.ckpt`` and stops every rank. Anywhere else (alignment stage, safety-token selection, reference-cache build,
evaluation) the task stops at once: each of those stages is cached or resumable, so the requeued job redoes at most
the stage it was in. Either way ``app.task_wrapper`` then requeues the job (:func:`hand_over`), logs one line, marks
the W&B run preempting and exits with status 143.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from pact_lightning.utils.strategies import process_env

received: int | None = None  # the requeue signal this task received
_previous: dict[int, Any] = {}  # the handlers ours replaced: submitit's requeue handler among them
_fit: Any = None  # the LastCheckpoint of the fit in progress, which acts on the signal at its batch end


class Requeued(SystemExit):
    """A requeue signal outside fit (or after fit's last batch): the task stops where it is."""

    def __init__(self, signum: int) -> None:
        super().__init__(143)  # app.EXIT_INTERRUPTED
        self.signum = signum


def requeue_signals() -> list[signal.Signals]:
    """The signals that ask a run to save and be requeued: SIGUSR1 (SLURM's ``--signal=USR1@<s>`` convention) and
    submitit's timeout/preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    submitit = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    return list(dict.fromkeys(s for s in (getattr(signal, "SIGUSR1", None), submitit) if s is not None))


def _on_signal(signum: int, frame) -> None:
    global received
    if received is not None:
        return  # already stopping for one
    received = signum
    if _fit is not None:
        _fit.requeue = signum
    else:
        raise Requeued(signum)


def installed() -> bool:
    return any(signal.getsignal(s) is _on_signal for s in requeue_signals())


@contextmanager
def handled() -> Iterator[None]:
    """Our handler for the requeue signals while the block runs (a no-op in a thread, or inside another such block)."""
    global received
    if threading.current_thread() is not threading.main_thread() or installed():
        yield
        return
    received = None
    previous = {sig: signal.signal(sig, _on_signal) for sig in requeue_signals()}
    _previous.update(previous)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _previous.clear()


@contextmanager
def deferred_to(callback) -> Iterator[None]:
    """While the block runs (fit), a requeue signal sets ``callback.requeue`` instead of stopping the task."""
    global _fit
    with handled():
        _fit = callback
        try:
            yield
        finally:
            _fit = None


def slurm_job() -> str | None:
    """This job's id for scontrol (``<array job>_<task>`` for an array task), or None outside SLURM."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID")


def hand_over(signum: int, resume: str) -> tuple[bool, str]:
    """Requeue the job: submitit's own handler when submitit runs it (it requeues the point, then ``sys.exit(-1)``),
    else ``scontrol requeue`` from rank 0 under SLURM. Whether it was requeued, and the line to log; ``resume`` is the
    command that resumes the run by hand."""
    name = signal.Signals(signum).name
    previous = _previous.get(signum)
    if callable(previous):
        try:
            previous(signum, None)
        except SystemExit:  # submitit requeued the job and exits
            return True, f"{name}: submitit requeued this job; the requeued job resumes the run in the same directory"
        except FileNotFoundError as err:
            return False, f"could not requeue (scontrol not found: {err}): resubmit with\n  {resume}"
        except Exception as err:  # noqa: BLE001 - submitit's "Job not requeued because: timed-out too many times"
            return False, f"{name}: submitit did not requeue this job ({err}); resubmit with\n  {resume}"
        return False, f"{name}: rank {process_env().rank}: rank 0 requeues the job"  # submitit acts on rank 0 only
    job = slurm_job()
    if job is None:
        return False, f"{name} outside SLURM: nothing requeues this run; resume it with\n  {resume}"
    if process_env().rank != 0:
        return False, f"{name}: rank {process_env().rank}: rank 0 requeues SLURM job {job}"
    try:
        code = subprocess.call(["scontrol", "requeue", job], timeout=60)
    except FileNotFoundError:
        return False, f"could not requeue (scontrol not found): resubmit with\n  {resume}"
    except subprocess.TimeoutExpired:
        return False, f"could not requeue (scontrol requeue {job} did not answer in 60 s): resubmit with\n  {resume}"
    if code != 0:
        return False, (f"could not requeue (scontrol requeue {job} exited with {code}: a job SLURM does not requeue "
                       f"needs sbatch --requeue): resubmit with\n  {resume}")
    return True, f"{name}: requeued SLURM job {job} (scontrol requeue); the requeued job resumes the run in the same directory"
