"""Every objective's settings, declared once: the schema of ``method.objective`` (torch-free, so composing a config
imports no torch).

Each objective has one settings dataclass; each field a :func:`~pact_lightning.schema.setting` with its type (the
annotation), default, rule (bounds) and help text. The dataclass is

* the schema of ``method.objective``: :func:`register_schemas` stores it in Hydra's ConfigStore as
  ``method/objective/<name>``, and ``pact_lightning/conf/method/<name>.yaml`` names it first in its defaults list
  (Hydra's "Structured Config schema" pattern), so the YAML only overrides it. Composition refuses a key the class does
  not declare (a typo, a stale key in a YAML) and a value of the wrong type, naming the key; ``schema.validate``
  checks the rules before every task (``method.objective.temperature=nan is not finite; use a finite number > 0``);
* what the objective's constructor accepts: ``Pact(lam, safety_tokens, **settings)`` checks ``settings`` with
  :func:`~pact_lightning.schema.check_settings`, so values given in code are refused with the same message.

The defaults are the authors' values (the constructors' defaults before this module). Where a method YAML runs
another value — Lisa's 3 / 22 alignment / user steps per cycle in the embedded default, against the authors' 100 / 900
— the YAML overrides it, and says why.

Every node also has ``_target_`` (the objective class, which a user may point at a class of their own:
``method.objective._target_=mypkg.MyObjective`` passes it this objective's settings) and ``lam``
(``${..lam}``: λ is ``method.lam``, checked there).

A user-defined objective with settings of its own: either a method YAML with a plain ``objective:`` block (untyped:
its class checks its own arguments, e.g. with ``check_settings``), or a settings dataclass of its own, registered
before the config is composed (in the script that calls the app, or a module under ``hydra_plugins/``, which Hydra
imports at start-up), that its method YAML names::

    @dataclass
    class MySettings(ObjectiveSettings):
        _target_: str = "mypkg.MyObjective"
        alpha: float = setting(0.5, FRACTION, help="share of ...")

    register("mine", MySettings)          # method/mine.yaml:  defaults: [objective: mine, _self_]
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from pact_lightning.schema import INT_NONNEG, NONNEG, POSITIVE, Choice, Number, setting

# C of AsFT's penalty (and of SafeLoRA's projection): pact_lightning/objectives/direction.py
PROJECTORS = ("fro", "fro2", "orth")


@dataclass
class ObjectiveSettings:
    """What every ``method.objective`` node holds: the class and λ."""

    _target_: str = setting(MISSING, help="the objective class (overridable: a class of your own gets these settings)")
    lam: float | None = setting("${..lam}", help="λ, the regulariser's weight: method.lam (checked there)")


@dataclass
class PactPlainSettings(ObjectiveSettings):
    """PACT's plain reading: no gate, uniform weights (pact_lightning/objectives/pact_plain.py)."""

    _target_: str = "pact_lightning.objectives.pact_plain.PactPlain"
    temperature: float = setting(2.0, POSITIVE, help="T of the distillation softmax over S (the loss carries T²)")
    include_rest_mass: bool = setting(False, help="ablation: one more outcome for all non-safety tokens (holds the "
                                                  "total mass on S)")


@dataclass
class PactSettings(PactPlainSettings):
    """PACT (pact_lightning/objectives/pact.py; docs/method.md §2–§3): the plain reading's settings, and the target's
    weights and gate."""

    _target_: str = "pact_lightning.objectives.pact.Pact"
    weighted: bool = setting(True, help="target tilted by w = max(v, 0), the tokens the aligned model prefers over "
                                        "its base; false = uniform weights")
    gate: bool = setting(True, help="mix the post-only reference into the target early in the response (c_t); "
                                    "false: c_t = 0")
    gate_top_p: float = setting(0.9, Number(float, 0, 1, open_low=True),
                                help="I(ℓ) counts the tokens of S holding this much of softmax(ℓ / gate_temperature)")
    gate_temperature: float = setting(1.0, POSITIVE, help="T_g of that softmax")
    gate_alpha: float = setting(2.0, Number(float), help="α: slope of the sigmoid over the count gap I(ℓθ) − I(ℓpost)")
    gate_bias: float = setting(0.0, Number(float), help="b: shift of that sigmoid (c_t = 0.5 when the gap equals b)")
    gate_n: int = setting(8, INT_NONNEG, help="N: response steps t ≤ N are not decayed")
    gate_tau: float = setting(8.0, POSITIVE, help="τ_d: decay constant of exp(−max(t − N, 0) / τ_d) after step N")
    gate_boost: float = setting(1.0, NONNEG, help="multiplies c_t (1 = the authors' value)")


@dataclass
class SFTSettings(ObjectiveSettings):
    """Standard SFT (pact_lightning/objectives/sft.py): no settings; a λ is ignored with a warning."""

    _target_: str = "pact_lightning.objectives.sft.SFT"


@dataclass
class KLFullSettings(ObjectiveSettings):
    """Full-vocabulary KL to the reference (pact_lightning/objectives/kl_full.py): no settings beyond λ."""

    _target_: str = "pact_lightning.objectives.kl_full.KLFull"


@dataclass
class TokenwiseSettings(ObjectiveSettings):
    """Qi et al.'s token-wise constrained objective (pact_lightning/objectives/tokenwise.py); their β schedule."""

    _target_: str = "pact_lightning.objectives.tokenwise.Tokenwise"
    beta: float = setting(0.1, POSITIVE, help="β_t after the first bias_length response steps")
    first_token_factor: float = setting(5.0, POSITIVE, help="β_0 = β · first_token_factor")
    bias_factor: float = setting(20.0, POSITIVE, help="β_t = β · bias_factor for 1 ≤ t < bias_length")
    bias_length: int = setting(5, INT_NONNEG, help="response steps with the boosted β (the first included)")


@dataclass
class LisaSettings(ObjectiveSettings):
    """Lisa's Bi-State Optimisation (pact_lightning/objectives/lisa.py); the authors' cycle of 100 + 900 steps."""

    _target_: str = "pact_lightning.objectives.lisa.Lisa"
    align_steps: int = setting(100, INT_NONNEG, help="K_a: alignment steps per cycle (the run starts with them)")
    finetune_steps: int = setting(900, INT_NONNEG, help="K_f: user-data steps per cycle (at least 1: the objective "
                                                       "refuses 0, which never trains on the user data)")
    prox_warmup_frac: float = setting(0.1, Number(float, 0, 1),
                                      help="the proximal term is off while step ≤ this share of the run's steps")


@dataclass
class AsftSettings(ObjectiveSettings):
    """AsFT (pact_lightning/objectives/asft.py): the penalty on the LoRA update outside the alignment direction."""

    _target_: str = "pact_lightning.objectives.asft.Asft"
    projector: str = setting("fro", Choice(PROJECTORS), help="C = VVᵀ/‖V‖_F (fro, the authors'); fro2 = VVᵀ/‖V‖_F²; "
                                                              "orth = the projector onto span(V)")
    include_lora_scale: bool = setting(False, help="false = the raw BA as the authors; true = penalise ΔW = s·BA")


#: method name → its objective's settings (the method YAMLs name them: ``defaults: [objective: <name>, _self_]``)
SETTINGS: dict[str, type[ObjectiveSettings]] = {
    "pact": PactSettings, "pact_plain": PactPlainSettings, "sft": SFTSettings, "kl_full": KLFullSettings,
    "tokenwise": TokenwiseSettings, "lisa": LisaSettings, "asft": AsftSettings,
}


def register(name: str, settings: type) -> None:
    """Store ``settings`` in Hydra's ConfigStore as ``method/objective/<name>``: a method YAML's defaults list entry
    ``objective: <name>`` makes it the schema of ``method.objective``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="method/objective", name=name, node=settings)


def register_schemas() -> None:
    """Register every objective's settings (:data:`SETTINGS`); before any config that has a method is composed.
    pact_lightning.app calls it at import (the apps, ``compose_group_option``); so does the tests' compose."""
    for name, settings in SETTINGS.items():
        register(name, settings)
