"""Build a cached artefact once, even when several processes (DDP ranks, sweep jobs) ask for it at the same time.

The builder always writes to a temporary name and renames atomically, so a reader never sees a half-written result.
A lock file only avoids duplicated work: the process that creates it builds, the others wait for the result. A lock
older than ``stale_s`` (its owner was killed) is ignored and the waiting process builds its own copy — the atomic
rename makes two concurrent builds harmless (the last complete copy wins).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def build_once(target: Path, exists: Callable[[], bool], build: Callable[[], T], stale_s: float = 6 * 3600,
               poll_s: float = 5.0) -> T | None:
    """Run ``build`` unless ``exists()``; while another process holds ``<target>.lock``, wait for it instead.

    Returns what ``build`` returned, or None when the artefact was found (already there, or built by another process).
    """
    if exists():
        return None
    lock = target.with_name(target.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:  # released between our open and stat: try again
                continue
            if age > stale_s:
                log.warning("%s is %.0f s old (its builder died?); building a private copy", lock, age)
                return build()
            log.info("Another process is building %s; waiting (lock %s)", target, lock)
            time.sleep(poll_s)
            if exists():
                return None
            continue
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            return None if exists() else build()
        finally:
            lock.unlink(missing_ok=True)
