"""Defences against harmful fine-tuning that PACT is compared with (docs/defence_methods.md), and their registry.

A defence acts at one of three hook points, and says which by its base class:

* :class:`AlignmentDefence` — the alignment stage trains with its step (Vaccine, Booster): ``align/defence=<name>``;
* :class:`ObjectiveDefence` — a fine-tuning objective it binds to what it reads (Lisa, AsFT): ``method=<name>``;
* :class:`PosthocDefence` — an edit of the trained adapter, evaluated as a model of its own (SafeLoRA):
  ``posthoc=<name>``.

A config selects a defence by ``_target_`` (its class, with its settings as arguments); the class registers itself
under its ``name`` when its module is imported (:func:`register`), so code outside the package adds one without an
edit here (docs/extending.md). Everything that dispatches on a defence — the alignment stage, build, finish, evaluate,
the benchmark, the run's method label and the report — asks :func:`get` or :func:`hook_of`.

This module and the defences' own modules import torch only when a defence runs: the report reads the registry in a
Python without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

from pact_lightning.errors import ConfigError

HOOKS = ("alignment", "objective", "posthoc")
# the package's own defences: imported on the first lookup, so the registry knows them without a run importing them
BUILTIN = ("vaccine", "booster", "lisa", "asft", "safelora")
_REGISTRY: dict[str, type[Defence]] = {}


@dataclass
class Defence:
    """A defence: its ``name`` (the label runs carry, e.g. ``vaccine+sft``), where it acts (``hook``), and its settings
    as dataclass fields of the subclass, each declared once with ``pact_lightning.schema.setting`` (type, default,
    rule, help) and checked on construction, naming ``<key>.<field>``."""

    name: ClassVar[str]
    hook: ClassVar[str]
    key: ClassVar[str] = ""  # the config key its settings sit under, for errors (e.g. align.defence)

    def __post_init__(self) -> None:
        from dataclasses import fields

        from pact_lightning.schema import settings_problems

        problems = settings_problems(type(self), {f.name: getattr(self, f.name) for f in fields(self)}, self.key)
        if problems:
            raise ConfigError("; ".join(problems))

    def settings(self) -> dict[str, Any]:
        """Its settings as plain values (what enters the aligned model's cache key, and the run's record)."""
        from dataclasses import asdict

        return asdict(self)


class AlignmentDefence(Defence):
    """Changes the alignment stage's training step. ``check`` runs before the (long) stage; ``step`` returns the
    :class:`pact_lightning.models.module.TrainingStep` the stage's module trains with."""

    hook = "alignment"
    key = "align.defence"

    def check(self, poison, eval_prompts: list[str]) -> None:
        """Refuse, before the stage, data that would make the defence see the attack's or the benchmark's prompts."""

    def step(self, tokenizer, align) -> Any:
        raise NotImplementedError


class ObjectiveDefence(Defence):
    """A fine-tuning objective (``objective``: its class path) that needs more than a batch: ``bind`` hands it what it
    reads before fit, from ``inputs`` (:class:`pact_lightning.build.DefenceInputs`)."""

    hook = "objective"
    objective: ClassVar[str]

    def bind(self, objective, policy, inputs) -> None:
        raise NotImplementedError


class PosthocDefence(Defence):
    """An edit of the trained LoRA adapter, ``edit(model, directions) -> report`` in place; the edited model is saved and
    evaluated as ``<method>+<name>``. ``needs_directions``: it reads the alignment directions V = W_aligned − W_base."""

    hook = "posthoc"
    key = "posthoc"
    needs_directions: ClassVar[bool] = True

    def edit(self, model, directions) -> dict[str, Any]:
        raise NotImplementedError


def register(cls: type[Defence]) -> type[Defence]:
    """Class decorator: make ``cls`` known by its ``name`` (a second class under a taken name is refused)."""
    if cls.hook not in HOOKS:
        raise TypeError(f"{cls.__qualname__}.hook={cls.hook!r}: a defence acts at one of {', '.join(HOOKS)}")
    known = _REGISTRY.get(cls.name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ConfigError(f"two defences are named {cls.name!r}: {known.__module__}.{known.__qualname__} and "
                          f"{cls.__module__}.{cls.__qualname__}; give the new one another name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    for name in BUILTIN:
        import_module(f"pact_lightning.defences.{name}")


def registered() -> dict[str, type[Defence]]:
    """Every known defence by name: the package's own and those registered since (imported by a config's _target_)."""
    _load_builtin()
    return dict(_REGISTRY)


def get(name: str, hook: str | None = None, key: str = "defence") -> type[Defence]:
    """The defence registered as ``name`` (acting at ``hook`` when given); ``key`` names the setting, for the error."""
    found = registered().get(name)
    if found is None or (hook is not None and found.hook != hook):
        options = sorted(n for n, d in registered().items() if hook is None or d.hook == hook)
        raise ConfigError(f"{key}={name!r} is unknown; use one of {', '.join(options)} (or register your own: "
                          "docs/extending.md)")
    return found


def hook_of(name: str | None) -> str | None:
    """Where the defence ``name`` acts, None when no defence has that name."""
    found = registered().get(str(name))
    return found.hook if found is not None else None


def for_objective(objective) -> type[ObjectiveDefence] | None:
    """The objective-hook defence whose objective is ``objective``'s class (None for a plain objective)."""
    cls = type(objective)
    path = f"{cls.__module__}.{cls.__qualname__}"
    return next((d for d in registered().values() if d.hook == "objective" and d.objective == path), None)
