"""Wall time of each stage of a run (conversion, alignment, safety tokens, fit, evaluation, comparison runs).

Stages may nest; a nested stage is recorded as ``outer/inner``. The records live in this process (``reset`` at the
start of each run) so that stages deep inside a run need no timer handed down to them.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

_records: dict[str, float] = {}
_stack: list[str] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    _stack.append(name)
    key = "/".join(_stack)
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        _stack.pop()
        _records[key] = _records.get(key, 0.0) + seconds
        log.info("stage %s: %.1f s", key, seconds)


def timings() -> dict[str, float]:
    """Seconds per stage so far, rounded to 0.1 s."""
    return {k: round(v, 1) for k, v in _records.items()}


def reset() -> None:
    """Start a new run's records — unless a stage is open: a run nested in a stage (a comparison run) adds to the
    records of the run around it."""
    if not _stack:
        _records.clear()


def reset_peak_memory() -> None:
    """Measure the peak memory of what runs from here: the CUDA allocator's peak, and on Linux the process's resident
    high-water mark, which writing "5" to /proc/self/clear_refs resets (a sweep's points share one process)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux, or not allowed: the peak then counts from the process's start
        pass


def peak_memory_mib() -> dict[str, float]:
    """Peak resident memory of the process (``rss``) and, on a GPU, peak CUDA allocation (``cuda``), in MiB, since
    the last ``reset_peak_memory``."""
    import resource

    import torch

    out = {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        with open("/proc/self/status") as f:
            out["rss"] = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.max_memory_allocated() / 2**20
    return {k: round(v, 1) for k, v in out.items()}
