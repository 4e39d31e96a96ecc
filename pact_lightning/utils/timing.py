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
