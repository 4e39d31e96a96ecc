"""Build a cached artefact once, even when several processes (DDP ranks, sweep jobs) ask for it at the same time.

The builder always writes to a temporary name and renames atomically, so a reader never sees a half-written result.
A lock (``<target>.lock``, ``flock``) only avoids duplicated work: the process that holds it builds, the others wait
and then find the result. The kernel releases the lock when its holder dies, so a killed builder (even by SIGKILL)
usually leaves nothing that blocks the others. The holder writes who it is into the lock file (host, pid, SLURM job)
and touches it every ``HEARTBEAT_S``, so that a waiter can say whom it waits for, and can tell a holder that is gone
while its lock is not: a lock file inherited by a forked child that outlived its parent, or one held on a shared
filesystem by a node that died. Such a lock is broken (the file unlinked, a new one made): safe, since the lock only
avoids duplicated work. A waiter gives up after ``paths.lock_wait_s`` seconds (a stopped or hung holder) with a
message naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from pact_lightning.errors import ArtifactError

log = logging.getLogger(__name__)

T = TypeVar("T")

HEARTBEAT_S = 30.0  # the holder touches its lock file this often
STALE_S = 600.0  # a holder on another host silent for this long is dead (or stopped: taking over is safe either way)
WAIT_S: float | None = 4 * 3600.0  # paths.lock_wait_s (set by app.task_wrapper); None waits without limit
POLL_S = 1.0
REPORT_S = 600.0  # a waiter says it is still waiting this often


def configure(wait_s: float | None) -> None:
    """How long :func:`build_once` waits for another builder (``paths.lock_wait_s``; None: without limit)."""
    global WAIT_S
    WAIT_S = None if wait_s is None else float(wait_s)


def build_once(target: Path, exists: Callable[[], bool], build: Callable[[], T]) -> T | None:
    """Run ``build`` unless ``exists()``; while another process builds ``target``, wait for it instead.

    Returns what ``build`` returned, or None when the artefact was found (already there, or built by another process).
    Raises ArtifactError when another process holds the lock longer than ``paths.lock_wait_s``.
    """
    if exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock"), target, exists) as found:
        return None if found or exists() else build()


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` (/proc), which tells a live holder from another process given the same pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _identity() -> dict:
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()), "slurm_job": job,
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _holder(path: Path) -> tuple[dict | None, float | None, int | None]:
    """What the lock file says of its holder, the age of its heartbeat in seconds, and its inode."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            text = f.read(4096)
    except OSError:
        return None, None, None
    try:
        who = json.loads(text)
    except ValueError:
        who = None  # written by an older version, or mid-write
    return (who if isinstance(who, dict) else None), time.time() - st.st_mtime, st.st_ino


def _describe(who: dict | None) -> str:
    if who is None:
        return "an unknown process (its lock file names none)"
    job = f", SLURM job {who['slurm_job']}" if who.get("slurm_job") else ""
    return f"pid {who.get('pid')} on {who.get('host')}{job}, since {who.get('since')}"


def _state(who: dict | None, age: float | None) -> str:
    """``dead``, ``stopped`` (same host, SIGSTOP/suspended), ``silent`` (no heartbeat), or ``alive``."""
    if who is None or age is None:
        return "alive"  # nothing to judge by: wait
    if who.get("host") == socket.gethostname():
        pid = int(who.get("pid", 0))
        start = _start_time(pid)
        if start is None or (who.get("start") is not None and start != who["start"]):
            return "dead"
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return "stopped"
        except OSError:
            return "dead"
        return "alive"
    return "dead" if age > STALE_S else "alive"


@contextmanager
def _locked(path: Path, target: Path, exists: Callable[[], bool]) -> Iterator[bool]:
    """Hold the lock at ``path``; yields True when ``exists()`` turned true while waiting (no need to build)."""
    start, told, reported = time.monotonic(), False, 0.0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            got = _try_lock(fd)
            if got:
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # not a file that a waiter broke (unlinked) meanwhile
                    break
            os.close(fd)
        except BaseException:
            os.close(fd)
            raise
        if exists():
            yield True
            return
        who, age, inode = _holder(path)
        state = _state(who, age)
        if state == "dead":
            log.warning("Lock %s is held, but its holder, %s, is gone (%s); taking it over", path, _describe(who),
                        "no such process" if who and who.get("host") == socket.gethostname()
                        else f"no heartbeat for {age:.0f} s")
            if _holder(path)[2] == inode:  # still the file judged (another waiter may have broken it already)
                path.unlink(missing_ok=True)
            continue
        waited = time.monotonic() - start
        what = f"{_describe(who)}{' — that process is stopped (SIGSTOP or suspended)' if state == 'stopped' else ''}"
        if WAIT_S is not None and waited >= WAIT_S:
            raise ArtifactError(
                f"Gave up after {waited:.0f} s waiting for {target}: {path} is held by {what}. If that build is stuck, "
                f"end it (scancel the job, or kill the pid) and rerun; to wait longer set paths.lock_wait_s=<seconds> "
                "(null waits without limit)")
        if not told or waited - reported >= REPORT_S:
            log.warning("Waiting for %s: %s builds it (lock %s); waiting %s", target, what, path,
                        "without limit" if WAIT_S is None else f"up to {WAIT_S:.0f} s (paths.lock_wait_s)")
            told, reported = True, waited
        time.sleep(POLL_S if WAIT_S is None else min(POLL_S, max(WAIT_S - waited, 0.01)))
    who, _, _ = _holder(path)
    if who is not None and not exists():  # its holder died mid-build (a finished holder clears the file)
        log.info("Lock %s was last held by %s, which left no %s; building it", path, _describe(who), target.name)
    stop, beat = _announce(fd)
    try:
        yield False
    finally:
        stop.set()
        beat.join()  # before the fd is closed (and its number reused)
        os.ftruncate(fd, 0)  # a holder named in the file is one that never finished
        os.close(fd)  # releases the flock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _announce(fd: int) -> tuple[threading.Event, threading.Thread]:
    """Write who holds the lock into it, and touch it every HEARTBEAT_S until the returned event is set."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_identity()).encode(), 0)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                os.utime(fd)
            except OSError:
                return

    thread = threading.Thread(target=beat, name="lock-heartbeat", daemon=True)
    thread.start()
    return done, thread
