"""Lisa as a defence: a fine-tuning objective (pact_lightning/objectives/lisa.py holds the Bi-State update rule) that
cycles through alignment data besides the user's batches; ``method=lisa``."""

from __future__ import annotations

from dataclasses import dataclass

from pact_lightning.defences import ObjectiveDefence, register


@register
@dataclass
class LisaDefence(ObjectiveDefence):
    name = "lisa"
    objective = "pact_lightning.objectives.lisa.Lisa"

    def bind(self, objective, policy, inputs) -> None:
        objective.bind_alignment_data(policy, inputs.alignment_data())
