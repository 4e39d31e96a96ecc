"""A run's setting — method, λ, k, p, n, seed, model, task — the one place where these keys are named.

Built from a composed config (:meth:`RunSetting.from_config`) or read back from a results.json
(:meth:`RunSetting.from_results`); it writes results.json's setting fields, W&B tags, the summary line and the
report's columns. The method of a run on an alignment-stage defence's model names both (``vaccine+sft``), that of a
post-hoc model too (``sft+safelora``, finish.py); defences are named by their registry (defences/__init__.py). λ and
k are recorded as the run *uses* them: λ = 0 for an objective without a regulariser (SFT ignores a configured λ), k
only for the objectives that read the safety tokens (for the others S only feeds the per-step diagnostic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

# field → (results.json key, config key)
KEYS = {"method": ("method", "method.name"), "lam": ("lam", "method.lam"),
        "k": ("num_safety_tokens", "method.num_safety_tokens"), "p": ("poison_ratio", "data.poison_ratio"),
        "n": ("num_samples", "data.num_samples"), "seed": ("seed", "seed"), "model": ("model", "model.name"),
        "task": ("task", "data.task")}


@dataclass(frozen=True)
class RunSetting:
    method: str | None = None
    lam: float | None = None
    k: int | None = None
    p: float | None = None
    n: int | None = None
    seed: int | None = None
    model: str | None = None
    task: str | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> RunSetting:
        """The setting of a composed run config (keys it lacks are None)."""
        values = {name: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
                  for name, (_, key) in KEYS.items()}
        defence = alignment_defence(cfg)
        if defence is not None and values["method"]:  # the attack on a defended alignment: vaccine+sft
            values["method"] = f"{defence}+{values['method']}"
        objective = objective_class(cfg)
        if objective is not None:
            values["lam"] = values["lam"] if objective.has_regularizer else 0
            values["k"] = values["k"] if objective.needs_safety_tokens else None
        return cls(**values)

    @classmethod
    def from_results(cls, results: Mapping[str, Any]) -> RunSetting:
        return cls(**{name: results.get(key) for name, (key, _) in KEYS.items()})

    def as_results(self) -> dict[str, Any]:
        """The setting under results.json's keys."""
        return {key: getattr(self, name) for name, (key, _) in KEYS.items()}

    def tags(self) -> list[str]:
        """``method=pact``, ``lam=1.0``, ``k=50``, ``p=0.1``, … for the fields that are set."""
        return [f"{name}={value}" for name, value in asdict(self).items() if value is not None]

    def line(self) -> str:
        """The summary's one-line form, in results.json's terms."""
        return " ".join(f"{key}={value}" for key, value in self.as_results().items() if value is not None)

    def without(self, *names: str) -> tuple:
        """The values of the other fields, in order: the key that groups runs differing only in ``names``."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in names)

    @staticmethod
    def names(*without: str) -> list[str]:
        return [f.name for f in fields(RunSetting) if f.name not in without]


def alignment_defence(cfg: DictConfig) -> str | None:
    """The name of the alignment-stage defence that aligned the run's model (``align/defence=<name>``, or the
    deprecated ``align.defense=<name>``), as its class declares it; None without the alignment stage or a defence."""
    from hydra.utils import get_class

    if not OmegaConf.select(cfg, "align.enabled", default=False):
        return None
    old, target = (OmegaConf.select(cfg, f"align.{key}", default=None) for key in ("defense", "defence._target_"))
    return str(old) if old is not None else (get_class(target).name if target is not None else None)


def objective_class(cfg: DictConfig):
    """The class of ``method.objective`` (None when the config has no method), without instantiating it."""
    from hydra.utils import get_class

    from pact_lightning.errors import ConfigError

    target = OmegaConf.select(cfg, "method.objective._target_", default=None)
    if target is None:
        return None
    try:
        return get_class(target)
    except Exception as err:  # noqa: BLE001 - Hydra wraps import errors in several types
        raise ConfigError(f"method.objective._target_={target!r} cannot be imported ({err}); pick a method from "
                          "pact_lightning/conf/method/") from None
