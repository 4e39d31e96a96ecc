"""Progress a user can follow where no one watches a live bar (pact_lightning/conf/progress/default.yaml).

On a terminal the stages draw their bars (Rich for training, tqdm for generation and scoring). On a non-TTY — a SLURM
``.out`` file, a pipe — a bar shows only its final state, so there each long stage logs a plain line instead, at most
every ``progress.every_s`` seconds and once at its end::

    alignment: step 40/500 (8%), loss 1.234, elapsed 0:02:10, ETA 0:24:55

The settings are the process's own (:func:`configure`, called by the app's task wrapper), so that the stages deep inside
a run need none handed down to them.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Iterable, Iterator

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from pact_lightning.errors import ConfigError

log = logging.getLogger(__name__)

_settings: dict[str, Any] = {"plain": "auto", "every_s": 30.0}


def configure(node: Any = None) -> None:
    """Take ``progress.plain`` (auto | true | false) and ``progress.every_s`` (seconds) from a config node."""
    if node is None:
        return
    plain_, every = node.get("plain", "auto"), node.get("every_s", 30.0)
    if plain_ not in ("auto", True, False):
        raise ConfigError(f"progress.plain={plain_!r} is not auto, true or false")
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0 or not math.isfinite(every):
        raise ConfigError(f"progress.every_s={every!r} is not a number of seconds > 0")
    _settings.update(plain=plain_, every_s=float(every))


def plain() -> bool:
    """Whether progress goes out as plain log lines: ``progress.plain``, where ``auto`` means when stdout or stderr is
    not a terminal (where a bar would show only its final state)."""
    if _settings["plain"] != "auto":
        return bool(_settings["plain"])
    return not (_isatty(sys.stdout) and _isatty(sys.stderr))


def _isatty(stream) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def clock(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Lines:
    """The plain lines of one stage: :meth:`update` logs one when ``every_s`` seconds have passed since the last,
    :meth:`close` the last one (unless that state was just logged)."""

    def __init__(self, stage: str, total: int | float | None, unit: str = "step", initial: int = 0,
                 every_s: float | None = None) -> None:
        self.stage, self.unit = stage, unit
        self.total = int(total) if total is not None and math.isfinite(total) else None
        self.done = self.start_done = initial
        self.every_s = _settings["every_s"] if every_s is None else every_s
        self.start = self.last = time.monotonic()
        self.logged_done: int | None = None
        self.metrics: dict[str, float] = {}

    def update(self, n: int = 1, **metrics: float) -> None:
        self.set(self.done + n, **metrics)

    def set(self, done: int, **metrics: float) -> None:
        self.done = done
        self.metrics |= {k: v for k, v in metrics.items() if v is not None}
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._log(now)

    def close(self) -> None:
        if self.logged_done != self.done:
            self._log(time.monotonic())

    def line(self, now: float) -> str:
        elapsed = now - self.start
        parts = [f"{self.stage}: {self.unit} {self.done}/{self.total if self.total is not None else '?'}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts += [f"{k} {v:.4g}" for k, v in self.metrics.items()]
        parts.append(f"elapsed {clock(elapsed)}")
        progressed = self.done - self.start_done
        if self.total is not None and progressed > 0 and self.done < self.total:
            parts.append(f"ETA {clock(elapsed / progressed * (self.total - self.done))}")
        return ", ".join(parts)

    def _log(self, now: float) -> None:
        self.logged_done = self.done
        log.info("%s", self.line(now))

    # tqdm's interface, for the places that hold a bar
    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent:
    def update(self, n: int = 1, **metrics: float) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        pass


def bar(total: int, desc: str, unit: str = "item", disable: bool = False):
    """A bar over ``total`` units with ``update(n)``: tqdm on a terminal, :class:`Lines` on a non-TTY, or nothing."""
    if disable:
        return _Silent()
    if plain():
        return Lines(desc, total, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)


def iterate(items: Iterable, desc: str, unit: str = "batch", total: int | None = None,
            disable: bool = False) -> Iterator:
    """``items``, with :func:`bar`'s progress."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc, unit, disable) as progress:
        for item in items:
            yield item
            progress.update(1)


class PlainProgressBar(ProgressBar):
    """Lightning's progress bar for a non-TTY: :class:`Lines` of the optimiser steps of ``fit``, with the loss."""

    def __init__(self, stage: str = "fit", metric: str = "train/loss", every_s: float | None = None) -> None:
        super().__init__()
        self.stage, self.metric, self.every_s = stage, metric, every_s
        self.enabled = True
        self.lines: Lines | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if self.enabled and trainer.is_global_zero:
            self.lines = Lines(self.stage, trainer.estimated_stepping_batches, "step", initial=trainer.global_step,
                               every_s=self.every_s)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.lines is not None:
            loss = trainer.callback_metrics.get(self.metric)
            self.lines.set(trainer.global_step, loss=None if loss is None else float(loss))

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if self.lines is not None:
            self.lines.close()
            self.lines = None


def progress_bar(stage: str = "fit") -> ProgressBar:
    """The progress bar of a Trainer: Rich's on a terminal, :class:`PlainProgressBar` (plain log lines) elsewhere."""
    return PlainProgressBar(stage) if plain() else RichProgressBar()
