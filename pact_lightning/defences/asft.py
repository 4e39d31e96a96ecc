"""AsFT as a defence: a fine-tuning objective (pact_lightning/objectives/asft.py holds the penalty) that reads the
alignment direction of every adapted module; ``method=asft``."""

from __future__ import annotations

from dataclasses import dataclass

from pact_lightning.defences import ObjectiveDefence, register


@register
@dataclass
class AsftDefence(ObjectiveDefence):
    name = "asft"
    objective = "pact_lightning.objectives.asft.Asft"

    def bind(self, objective, policy, inputs) -> None:
        objective.bind_directions(policy, inputs.directions())
