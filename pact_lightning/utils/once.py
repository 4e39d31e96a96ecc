"""Build a cached artefact once, even when several processes (DDP ranks, sweep jobs) ask for it at the same time.

The builder always writes to a temporary name and renames atomically, so a reader never sees a half-written result.
A lock (``<target>.lock``, filelock's ``flock``) only avoids duplicated work: the process that holds it builds, the
others wait and then find the result. The kernel releases the lock when its holder dies — a killed builder (even by
SIGKILL) never leaves a lock that blocks the others. The lock file itself stays (removing it would race); it holds
nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, TypeVar

from filelock import FileLock

log = logging.getLogger(__name__)

T = TypeVar("T")


def build_once(target: Path, exists: Callable[[], bool], build: Callable[[], T]) -> T | None:
    """Run ``build`` unless ``exists()``; while another process builds ``target``, wait for it instead.

    Returns what ``build`` returned, or None when the artefact was found (already there, or built by another process).
    """
    if exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(target.with_name(target.name + ".lock"))
    if lock.is_locked:  # held by another thread of this process
        log.info("Another builder holds %s; waiting", lock.lock_file)
    with lock:
        return None if exists() else build()
