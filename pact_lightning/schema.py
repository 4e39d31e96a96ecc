"""The public config keys, their types and ranges: checked in one place, before a run loads or writes anything.

A value of the wrong type (``seed=1.5``, ``data.batch_size=abc``), out of range (``data.batch_size=0``,
``optim.optimizer.lr=-1``) or not finite (``method.lam=nan``) is refused with the key, the value and what is valid.
Every problem of a config is reported at once. A key a config does not have (the StepLR ``gamma`` under a cosine
schedule) is not checked. Objectives and data classes check their own arguments too (:func:`check`), so a value built
outside a config is refused the same way.

Two kinds of declaration:

* :data:`RULES`: one rule per config key, for the keys of the YAML configs;
* *settings dataclasses*: a class's arguments declared once, each a :func:`setting` with its type (the annotation),
  default, rule and help text. Registered with Hydra's ConfigStore as the schema of a config node (``method.objective``:
  pact_lightning/objectives/settings.py), they type that node — Hydra refuses a key the class does not declare, or a
  value of the wrong type, when the config is composed — and :func:`validate` checks the rules of every typed node it
  finds, wherever it sits. :func:`check_settings` checks the same rules for arguments given in code::

      @dataclass
      class VaccineSettings:
          rho: float = setting(2.0, POSITIVE, help="ρ: radius of the embedding perturbation")

      check_settings(VaccineSettings, {"rho": -1.0}, prefix="align.defence")
      # ConfigError: align.defence.rho=-1.0 is out of range; use a finite number > 0
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from pact_lightning.errors import ConfigError

T = typing.TypeVar("T")


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
    # method (method.objective is typed by its objective's settings dataclass: pact_lightning/objectives/settings.py)
    "method.lam": Number(float, 0, optional=True), "method.num_safety_tokens": INT_POS,
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
    "paths.lock_wait_s": Number(float, 0, open_low=True, optional=True),
    "paths.min_free_mb": Number(float, 0, optional=True),
    "progress.every_s": POSITIVE,
    # publishing
    "hub.repo_id": Pattern(r"[\w.-]+/[\w.-]+", "a Hub repository id (user/name)", optional=True),
}


Rule = Number | Choice | Pattern


def check(key: str, value: Any) -> Any:
    """``value`` itself if it passes the rule of ``key`` in :data:`RULES`, else a ConfigError naming the key, the value
    and what is valid (for code that receives a setting outside a composed config)."""
    rule = RULES[key]
    problem = rule.problem(value)
    if problem is not None:
        raise ConfigError(f"{key}={value!r} {problem}; use {rule.valid()}")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Settings dataclasses: a class's arguments declared once (type, default, rule, help)

def setting(default: Any, rule: Rule | None = None, *, help: str) -> Any:
    """A field of a settings dataclass: its ``default`` (immutable), the ``rule`` its value must pass (None: its
    annotation's type is the only rule) and ``help``, what it means. The field's type is its annotation, which Hydra
    enforces when the dataclass is a config node's schema."""
    return field(default=default, metadata={"rule": rule, "help": help})


def is_settings(cls: Any) -> bool:
    """Whether ``cls`` is a settings dataclass (a dataclass with at least one :func:`setting` field)."""
    return isinstance(cls, type) and is_dataclass(cls) and any("help" in f.metadata for f in fields(cls))


def settings_problems(cls: type, values: Mapping[str, Any], prefix: str) -> list[str]:
    """What is wrong with ``values`` as arguments of the settings dataclass ``cls``: a name it does not declare, a
    value that fails its field's rule (or type, for a field without one). Each problem names the key in full,
    ``<prefix>.<name>``."""
    hints = typing.get_type_hints(cls)
    declared = {f.name: f for f in fields(cls)}
    problems = []
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in declared:
            problems.append(_undeclared(cls, key))
            continue
        rule = declared[name].metadata.get("rule")
        problem, valid = (rule.problem(value), rule.valid()) if rule is not None else _type_problem(hints[name], value)
        if problem is not None:
            problems.append(f"{key}={value!r} {problem}; use {valid}")
    return problems


def check_settings(cls: type[T], values: Mapping[str, Any], prefix: str) -> T:
    """``cls(**values)``, the defaults filled in, if every value passes (:func:`settings_problems`); else one
    ConfigError naming each bad key in full, as :func:`validate` does for a composed config::

        check_settings(PactSettings, {"temperature": float("nan")}, prefix="method.objective")
        # ConfigError: method.objective.temperature=nan is not finite; use a finite number > 0
    """
    problems = settings_problems(cls, values, prefix)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    return cls(**values)


def _undeclared(cls: type, key: str) -> str:
    names = ", ".join(f.name for f in fields(cls) if not f.name.startswith("_"))
    return f"{key} is not a setting of {cls.__name__}; use one of {names}"


def _type_problem(annotation: Any, value: Any) -> tuple[str | None, str]:
    """A value against its field's annotation (bool, int, float, str, X | None; any other type passes)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None, ""
        inner = [a for a in args if a is not type(None)]
        problem, valid = _type_problem(inner[0] if len(inner) == 1 else Any, value)
        return problem, valid + ", or null"
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(annotation)
    if expected is None:
        return None, ""
    ok = (isinstance(value, bool) if annotation is bool else
          isinstance(value, annotation if annotation is not float else (int, float)) and not isinstance(value, bool))
    return (None if ok else f"is not {expected}"), expected


def _settings_nodes(node: DictConfig, path: str = ""):
    """``(path, node)`` of every node of ``node`` typed by a settings dataclass (the Hydra node left out)."""
    if is_settings(OmegaConf.get_type(node)):
        yield path, node
    for key in node:
        if (not path and key == "hydra") or OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        child = node[key]
        if isinstance(child, DictConfig):
            yield from _settings_nodes(child, f"{path}.{key}" if path else str(key))


def _problem(cfg: DictConfig, key: str, rule: Rule) -> str | None:
    try:
        node = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=True)
    except Exception as err:  # noqa: BLE001 - an interpolation that cannot resolve is a problem of its own
        return f"{key}: {err}"
    if node is _MISSING:
        return None
    problem = rule.problem(node)
    return None if problem is None else f"{key}={node!r} {problem}; use {rule.valid()}"


# The keys of ``method``: a key no code reads (``+method.lamda=``) is refused rather than ignored.
METHOD_KEYS = ("name", "lam", "safety_tokens", "num_safety_tokens", "objective", "alignment_data")
# Settings that name a file or folder: ``~`` is expanded, an empty value (``PACT_CACHE=``) refused. The folders of
# ``paths`` come first: the others interpolate them.
PATH_KEYS = ("paths.root_dir", "paths.log_dir", "paths.cache_dir", "model.cache_dir", "model.pretrained",
             "reference.cache_dir", "eval.cache_dir", "method.safety_tokens", "ckpt_path", "checkpoint")
_ENV = {"paths.root_dir": "PROJECT_ROOT", "paths.cache_dir": "PACT_CACHE", "model.cache_dir": "PACT_CACHE"}


def path_problems(cfg: DictConfig, expand: bool = True) -> list[str]:
    """What is wrong with the path settings of ``cfg`` (:data:`PATH_KEYS`): an empty one, which would write at the
    filesystem root or into the launch folder, or a ``~`` that cannot be expanded. With ``expand``, a value that
    starts with ``~`` (from the command line or the environment) is replaced by its expansion, in place."""
    import os

    problems = []
    for key in PATH_KEYS:
        try:
            value = OmegaConf.select(cfg, key, default=None)
        except Exception:  # noqa: BLE001 - a setting that does not resolve here (outside the app) is not checked
            continue
        if not isinstance(value, str):
            continue
        env = _ENV.get(key)
        if not value.strip():
            via = f" (the environment variable {env} is set but empty: unset it or point it at a folder)" if env and \
                os.environ.get(env) is not None and not os.environ[env].strip() else ""
            problems.append(f"{key}={value!r} is empty{via}; set it to a path")
        elif value.startswith("~") and expand:
            expanded = os.path.expanduser(value)
            if expanded.startswith("~"):
                problems.append(f"{key}={value!r} starts with a '~' that names no user; write the path out")
            else:
                with open_dict(cfg):
                    OmegaConf.update(cfg, key, expanded, merge=False)
    return problems


def validate(cfg: DictConfig) -> None:
    """Check every key of :data:`RULES` that ``cfg`` has, and every node typed by a settings dataclass (its fields'
    rules, and no key its class does not declare: ``+key=`` adds one past Hydra's schema), no key of ``method`` that
    nothing reads (:data:`METHOD_KEYS`) and the path settings (:func:`path_problems`: ``~`` expanded, empty ones
    refused); one ConfigError lists all problems."""
    problems = [p for key, rule in RULES.items() if (p := _problem(cfg, key, rule)) is not None]
    problems += path_problems(cfg)
    method = OmegaConf.select(cfg, "method", default=None)
    if OmegaConf.is_dict(method):
        problems += [f"method.{name} is not a setting of method (nothing reads it); use one of "
                     f"{', '.join(k for k in METHOD_KEYS if k in method or k != 'alignment_data')}"
                     for name in method if name not in METHOD_KEYS]
    for path, node in _settings_nodes(cfg):
        cls = OmegaConf.get_type(node)
        declared = {f.name: f for f in fields(cls)}
        for name in node:
            if name not in declared:
                problems.append(_undeclared(cls, f"{path}.{name}"))
            elif (rule := declared[name].metadata.get("rule")) is not None and (
                    p := _problem(cfg, f"{path}.{name}", rule)) is not None:
                problems.append(p)
    if OmegaConf.select(cfg, "hub.repo_id") and OmegaConf.select(cfg, "offline", default=False):
        problems.append("hub.repo_id is set but offline=true forbids contacting the Hub; set offline=false to push, "
                        "or hub.repo_id=null")
    if problems:
        raise ConfigError("invalid setting" + ("s" if len(problems) > 1 else "") + ":\n  " + "\n  ".join(problems))


_MISSING = object()
