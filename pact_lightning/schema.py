"""The public config keys, their types and ranges: checked in one place, before a run loads or writes anything.

A value of the wrong type (``seed=1.5``, ``data.batch_size=abc``), out of range (``data.batch_size=0``,
``optim.optimizer.lr=-1``) or not finite (``method.lam=nan``) is refused with the key, the value and what is valid.
Every problem of a config is reported at once. A key a config does not have (the gate keys of ``method=sft``, the
StepLR ``gamma`` under a cosine schedule) is not checked. Objectives and data classes check their own arguments too
(:func:`check`), so a value built outside a config is refused the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pact_lightning.errors import ConfigError


@dataclass(frozen=True)
class Number:
    """An int or a finite float in [low, high] (bounds excluded where ``open_low``/``open_high``); None if ``optional``."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None."""
        if value is None:
            return None if self.optional else "must be set"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind is int and
                                                                               not isinstance(value, int)):
            return f"is not {'an integer' if self.kind is int else 'a number'}"
        if not math.isfinite(value):
            return "is not finite"
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return "is out of range" if below or above else None

    def valid(self) -> str:
        kind = "an integer" if self.kind is int else "a finite number"
        low, high = (None if v is None else (int(v) if self.kind is int else f"{v:g}") for v in (self.low, self.high))
        if low is not None and high is not None:
            bounds = f" in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
        elif low is not None:
            bounds = f" {'>' if self.open_low else '>='} {low}"
        elif high is not None:
            bounds = f" {'<' if self.open_high else '<='} {high}"
        else:
            bounds = ""
        return kind + bounds + (", or null" if self.optional else "")


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.options else "is not one of the options"

    def valid(self) -> str:
        return "one of " + ", ".join(self.options)


@dataclass(frozen=True)
class Pattern:
    """A string that matches ``regex`` as a whole, described as ``what``; None if ``optional``."""

    regex: str
    what: str
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.optional else "must be set"
        return None if isinstance(value, str) and re.fullmatch(self.regex, value) else f"is not {self.what}"

    def valid(self) -> str:
        return self.what + (", or null" if self.optional else "")


INT_POS, INT_NONNEG = Number(int, 1), Number(int, 0)
POSITIVE, NONNEG, FRACTION = Number(float, 0, open_low=True), Number(float, 0), Number(float, 0, 1)

RULES: dict[str, Number | Choice | Pattern] = {
    "seed": Number(int, 0, 2**32 - 1),
    # data
    "data.num_samples": INT_POS, "data.poison_ratio": FRACTION, "data.batch_size": INT_POS,
    "data.max_length": Number(int, 2), "data.min_response_tokens": INT_POS, "data.num_workers": INT_NONNEG,
    # method and objective
    "method.lam": Number(float, 0, optional=True), "method.num_safety_tokens": INT_POS,
    "method.objective.temperature": POSITIVE, "method.objective.gate_top_p": Number(float, 0, 1, open_low=True),
    "method.objective.gate_temperature": POSITIVE, "method.objective.gate_alpha": Number(float),
    "method.objective.gate_bias": Number(float), "method.objective.gate_n": INT_NONNEG,
    "method.objective.gate_tau": POSITIVE, "method.objective.gate_boost": NONNEG,
    "method.objective.beta": POSITIVE, "method.objective.first_token_factor": POSITIVE,
    "method.objective.bias_factor": POSITIVE, "method.objective.bias_length": INT_NONNEG,
    "method.objective.align_steps": INT_NONNEG, "method.objective.finetune_steps": INT_NONNEG,
    "method.objective.prox_warmup_frac": Number(float, 0, 1),
    # optimisation and training
    "optim.optimizer.lr": POSITIVE, "optim.optimizer.weight_decay": NONNEG,
    "optim.scheduler.warmup_ratio": FRACTION, "optim.scheduler.gamma": POSITIVE, "optim.scheduler.step_size": INT_POS,
    "optim.interval": Choice(("step", "epoch")),
    "trainer.max_steps": Number(int, -1), "trainer.max_epochs": Number(int, -1, optional=True),
    "trainer.accumulate_grad_batches": INT_POS, "trainer.gradient_clip_val": Number(float, 0, optional=True),
    "ce_chunk_size": Number(int, 1, optional=True),
    "reference.mode": Choice(("auto", "frozen_copy", "adapter_disabled", "cached")),
    "reference.build_batch_size": Number(int, 1, optional=True),
    # safety-token selection
    "safety.K": INT_POS, "safety.k_max": INT_POS, "safety.max_resp_len": INT_POS, "safety.temperature": POSITIVE,
    "safety.batch_size": INT_POS, "safety.mode": Choice(("p_diff", "pref_logratio")),
    # alignment stage
    "align.seed": Number(int, 0, 2**32 - 1), "align.data.num_samples": INT_POS, "align.data.harmful_fraction": FRACTION,
    "align.data.batch_size": INT_POS, "align.data.max_length": Number(int, 2),
    "align.trainer.max_epochs": INT_POS, "align.trainer.gradient_clip_val": Number(float, 0, optional=True),
    "align.optim.optimizer.lr": POSITIVE, "align.optim.optimizer.weight_decay": NONNEG,
    "align.optim.scheduler.warmup_ratio": FRACTION,
    "align.lora.r": INT_POS, "align.lora.alpha": POSITIVE, "align.lora.dropout": Number(float, 0, 1, open_high=True),
    "align.eval.num_prompts": Number(int, 1, optional=True), "align.eval.max_new_tokens": INT_POS, "align.eval.batch_size": INT_POS,
    # model
    "model.lora.r": INT_POS, "model.lora.alpha": POSITIVE, "model.lora.dropout": Number(float, 0, 1, open_high=True),
    # evaluation
    "eval.evaluator.batch_size": INT_POS, "eval.evaluator.max_new_tokens": INT_POS,
    "eval.evaluator.task_max_new_tokens": INT_POS, "eval.evaluator.temperature": POSITIVE,
    "eval.evaluator.top_p": Number(float, 0, 1, open_low=True),
    "eval.judge.format": Choice(("harmbench", "strongreject")), "eval.judge.template": Choice(("chat", "raw")),
    "eval.judge.max_new_tokens": INT_POS, "eval.judge.batch_size": INT_POS, "eval.judge.threshold": FRACTION,
    "process_group_timeout_min": POSITIVE,
    # publishing
    "hub.repo_id": Pattern(r"[\w.-]+/[\w.-]+", "a Hub repository id (user/name)", optional=True),
}


def check(key: str, value: Any) -> Any:
    """``value`` itself if it passes the rule of ``key`` in :data:`RULES`, else a ConfigError naming the key, the value
    and what is valid (for code that receives a setting outside a composed config)."""
    rule = RULES[key]
    problem = rule.problem(value)
    if problem is not None:
        raise ConfigError(f"{key}={value!r} {problem}; use {rule.valid()}")
    return value


def validate(cfg: DictConfig) -> None:
    """Check every key of :data:`RULES` that ``cfg`` has; one ConfigError lists all problems."""
    problems = []
    for key, rule in RULES.items():
        try:
            node = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=True)
        except Exception as err:  # noqa: BLE001 - an interpolation that cannot resolve is a problem of its own
            problems.append(f"{key}: {err}")
            continue
        if node is _MISSING:
            continue
        problem = rule.problem(node)
        if problem is not None:
            problems.append(f"{key}={node!r} {problem}; use {rule.valid()}")
    if OmegaConf.select(cfg, "hub.repo_id") and OmegaConf.select(cfg, "offline", default=False):
        problems.append("hub.repo_id is set but offline=true forbids contacting the Hub; set offline=false to push, "
                        "or hub.repo_id=null")
    if problems:
        raise ConfigError("invalid setting" + ("s" if len(problems) > 1 else "") + ":\n  " + "\n  ".join(problems))


_MISSING = object()
